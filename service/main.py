"""Entry point: ``python -m service`` runs uvicorn with host, port and log level from Settings."""

from __future__ import annotations

import logging

import uvicorn

from service.config import Settings


def main() -> None:
    settings = Settings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # factory=True: uvicorn calls create_app() itself, which reads the same SEQSERVE_* environment.
    uvicorn.run(
        "service.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
    )
