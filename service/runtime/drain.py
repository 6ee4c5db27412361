"""Drain on SIGTERM: fail readiness at once, keep serving for a while, then let uvicorn shut down.

A load balancer that learns about backends only from health checks (HAProxy, nginx, a cloud load
balancer in front of VMs) keeps sending requests to a process until its readiness check fails. If the
process closed its listener on SIGTERM straight away, every request routed to it in the meantime would be
refused. With ``SEQSERVE_DRAIN_SECONDS > 0`` the first SIGTERM only flips ``/readyz`` to 503 and starts a
timer; the process keeps answering everything (new requests too) until the timer hands the signal on to
uvicorn, which then closes the listener and finishes in-flight requests (``graceful_shutdown_seconds``).
A second SIGTERM skips the rest of the drain. On Kubernetes the preStop pause does this job (endpoints
drop the pod before SIGTERM), so the Helm chart leaves it at 0.

uvicorn installs its SIGTERM handler before the lifespan starts, so ``install`` (called from the
lifespan) wraps that handler, and ``uninstall`` puts it back.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType
from typing import Any

logger = logging.getLogger("uvicorn.error")


class Drain:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._draining = threading.Event()
        self._previous: Any = None
        self._timer: threading.Timer | None = None

    @property
    def draining(self) -> bool:
        return self._draining.is_set()

    def install(self) -> None:
        """Take over SIGTERM; a no-op without a drain period or off the main thread (in-process tests)."""
        if self.seconds <= 0 or threading.current_thread() is not threading.main_thread():
            return
        self._previous = signal.signal(signal.SIGTERM, self._on_sigterm)

    def uninstall(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._previous is not None and signal.getsignal(signal.SIGTERM) == self._on_sigterm:
            signal.signal(signal.SIGTERM, self._previous)

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        if self.draining:
            self._hand_on(signum, frame)
            return
        self._draining.set()
        logger.info("SIGTERM: not ready from now on; serving %.1f s more, then shutting down", self.seconds)
        self._timer = threading.Timer(self.seconds, self._hand_on, (signum, frame))
        self._timer.daemon = True
        self._timer.start()

    def _hand_on(self, signum: int, frame: FrameType | None) -> None:
        # uvicorn's handler only sets flags its main loop polls, so calling it from the timer thread is safe.
        if callable(self._previous):
            self._previous(signum, frame)
