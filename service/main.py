"""Entry point: ``python -m service`` runs uvicorn with host, port and log level from Settings."""

from __future__ import annotations

import logging

import uvicorn

from service.config import Settings
from service.metrics_exposition import prepare_multiprocess


def main() -> None:
    settings = Settings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # Each worker keeps its own counters; prometheus_client's multiprocess mode merges them at scrape
    # time from files in one directory, which must exist (and be empty) before the workers start.
    prepare_multiprocess(settings.workers)
    # factory=True: uvicorn calls create_app() itself (in every worker), reading the same environment.
    uvicorn.run(
        "service.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        workers=settings.workers,
    )
