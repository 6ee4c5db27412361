"""Entry point: ``python -m service`` runs uvicorn with host, port and log level from Settings.

On SIGTERM uvicorn closes the listening socket, lets in-flight requests finish (for at most
``graceful_shutdown_seconds``, then cancels them), runs the lifespan shutdown, and this process exits 0.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from types import FrameType

import uvicorn

from service.config import Settings
from service.metrics_exposition import prepare_multiprocess
from service.reload_sync import prepare as prepare_reload_dir


def main() -> None:
    settings = Settings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # Each worker keeps its own counters; prometheus_client's multiprocess mode merges them at scrape
    # time from files in one directory, which must exist (and be empty) before the workers start.
    prepare_multiprocess(settings.workers)
    # Each worker has its own registry; a hot reload reaches one of them and is passed on to the others
    # through this directory (service/reload_sync.py). Workers read it from the environment.
    created_reload_dir: Path | None = None
    if settings.workers > 1:
        reload_dir = settings.reload_dir
        if reload_dir is None:
            reload_dir = created_reload_dir = Path(tempfile.mkdtemp(prefix="seqserve-reload-"))
        prepare_reload_dir(reload_dir)
        os.environ["SEQSERVE_RELOAD_DIR"] = str(reload_dir)
    # uvicorn handles SIGTERM itself while it runs, then re-raises it once it has shut down gracefully.
    # With the default handler that re-raise would kill the process (exit status -15) after a clean
    # shutdown; this handler turns it (and a SIGTERM before uvicorn starts) into a normal exit 0.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    # factory=True: uvicorn calls create_app() itself (in every worker), reading the same environment.
    try:
        uvicorn.run(
            "service.app:create_app",
            factory=True,
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level,
            workers=settings.workers,
            timeout_graceful_shutdown=settings.graceful_shutdown_seconds,
            access_log=settings.access_log,
        )
    finally:
        if created_reload_dir is not None:
            shutil.rmtree(created_reload_dir, ignore_errors=True)


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    sys.exit(0)
