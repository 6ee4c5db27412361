"""Application factory. Building the app reads settings; loading models waits for the lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI

from service import __version__
from service.config import Settings
from service.errors import install_error_handlers
from service.limits import BodySizeLimitMiddleware
from service.providers import choose_providers
from service.registry import ModelRegistry
from service.routes import router


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings if settings is not None else Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # A missing CUDA provider under providers=cuda raises here, so the server never starts.
        registry = ModelRegistry(settings, choose_providers(settings.providers))
        # Loading hashes files and runs warm-up; keep that off the event loop.
        await anyio.to_thread.run_sync(registry.load)
        app.state.registry = registry
        yield

    app = FastAPI(title="seqserve", version=__version__, lifespan=lifespan)
    app.state.settings = settings
    app.add_middleware(BodySizeLimitMiddleware, max_body_bytes=settings.max_body_bytes)
    install_error_handlers(app)
    app.include_router(router)
    return app
