"""Entry point: ``python -m service`` runs uvicorn with host, port and log level from Settings.

On SIGTERM uvicorn closes the listening socket, lets in-flight requests finish (for at most
``graceful_shutdown_seconds``, then cancels them), runs the lifespan shutdown, and this process exits 0.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import Multiprocess

from service.config import Settings
from service.config_errors import load_settings
from service.http.listeners import REUSE_PORT_SUPPORTED, ReusePortPlaceholder, check_port_free
from service.metrics_exposition import prepare_multiprocess
from service.ready_banner import announce_when_ready
from service.runtime.reload_sync import prepare as prepare_reload_dir

logger = logging.getLogger("uvicorn.error")
APP = "service.app:create_app"


def main() -> None:
    # A bad SEQSERVE_* variable ends here with one line on stderr and exit status 2.
    settings = load_settings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # Each worker keeps its own counters; prometheus_client's multiprocess mode merges them at scrape
    # time from files in one directory, which must exist (and be empty) before the workers start.
    prepare_multiprocess(settings.workers)
    # The tokenizers library spreads encode_batch over a Rust thread pool whose idle threads spin; on a
    # serving box those threads take cores from ORT and the other workers (sentiment at 64 connections:
    # 1.54x the requests/s and 0.64x the CPU per request with it off). Workers inherit it; an operator
    # who sets the variable keeps their value.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # Each worker has its own registry; a hot reload reaches one of them and is passed on to the others
    # through this directory (service/runtime/reload_sync.py). Workers read it from the environment.
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
    options = _uvicorn_options(settings)
    announce_when_ready(settings)
    try:
        if settings.workers > 1 and settings.reuse_port and settings.port != 0 and REUSE_PORT_SUPPORTED:
            _run_reuse_port_workers(uvicorn.Config(APP, **options), settings)
        else:
            uvicorn.run(APP, **options)
    finally:
        if created_reload_dir is not None:
            shutil.rmtree(created_reload_dir, ignore_errors=True)


def _uvicorn_options(settings: Settings) -> dict[str, Any]:
    return {
        # factory=True: uvicorn calls create_app() itself (in every worker), reading the same environment.
        "factory": True,
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level,
        "workers": settings.workers,
        "timeout_graceful_shutdown": settings.graceful_shutdown_seconds,
        "access_log": settings.access_log,
        # One write per response instead of two, and the direct lane (service/http/protocol.py).
        "http": "service.http.protocol:DirectHttpToolsProtocol",
        # No "server: uvicorn" on every answer: bytes for nothing, and it names the software to scanners.
        "server_header": False,
    }


def _run_reuse_port_workers(config: uvicorn.Config, settings: Settings) -> None:
    """uvicorn's supervisor, with one SO_REUSEPORT listener per worker instead of one shared socket."""
    try:
        check_port_free(settings.host, settings.port)
    except OSError as exc:
        logger.error("cannot listen on %s:%d: %s", settings.host, settings.port, exc)
        sys.exit(STARTUP_FAILURE)
    logger.info(
        "Listening on http://%s:%d with %d workers, one SO_REUSEPORT socket each",
        settings.host, settings.port, settings.workers,
    )  # fmt: skip
    with contextlib.suppress(KeyboardInterrupt):
        Multiprocess(config, sockets=[ReusePortPlaceholder(settings.host, settings.port)]).run()


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    sys.exit(0)
