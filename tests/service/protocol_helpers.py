"""uvicorn's real HTTP protocol in process: fed raw bytes, its answers read from a recording transport."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from svc_helpers import make_settings
from uvicorn.config import Config
from uvicorn.server import ServerState

from service.app import create_app
from service.http.protocol import DirectHttpToolsProtocol


class Recorder(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.data = bytearray()
        self.closed = asyncio.Event()

    def write(self, data: Any) -> None:
        self.data += bytes(data)

    def close(self) -> None:
        self.closed.set()

    def is_closing(self) -> bool:
        return self.closed.is_set()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 5000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


class Counting:
    """Outermost wrapper: counts the requests that went through the app's middleware stack."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.calls = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.calls += 1
        await self.app(scope, receive, send)


@asynccontextmanager
async def served(repository: Path, **settings: Any) -> AsyncIterator[tuple[Counting, Config]]:
    app = create_app(make_settings(repository, **settings))
    async with app.router.lifespan_context(app):
        counting = Counting(app)
        config = Config(app=counting, http=DirectHttpToolsProtocol, lifespan="off", log_level="warning")
        config.load()
        yield counting, config


async def exchange(config: Config, raw: bytes, responses: int) -> bytes:
    transport = Recorder()
    protocol = DirectHttpToolsProtocol(config=config, server_state=ServerState(), app_state={})
    protocol.connection_made(transport)
    protocol.data_received(raw)
    for _ in range(2000):
        if transport.data.count(b"HTTP/1.1 ") >= responses:
            break
        await asyncio.sleep(0.005)
    await asyncio.sleep(0.05)  # what follows the last response (a close) happens meanwhile
    protocol.connection_lost(None)
    return bytes(transport.data)


def post(path: str, body: bytes, *extra: str) -> bytes:
    head = [f"POST {path} HTTP/1.1", "Host: t", "Content-Type: application/json"]
    head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join([*head, *extra]) + "\r\n\r\n").encode() + body


def metric(text: str, name: str, labels: str) -> float:
    match = re.search(rf"^{re.escape(name)}\{{{re.escape(labels)}\}} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0
