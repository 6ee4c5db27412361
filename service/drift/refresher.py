"""The per-process thread that refreshes every live drift monitor, and which version owns a model's series.

A thread rather than per-request work: scores stay current (and windows age out) even when traffic
stops, and the request path never pays for binning. Monitors are held weakly, so a version dropped by a
reload or a closed app is forgotten with its handler.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from typing import Any

from service.drift import metrics

logger = logging.getLogger(__name__)

_monitors: weakref.WeakSet[Any] = weakref.WeakSet()
# model name -> the monitor whose version most recently saw traffic (it owns the model's gauges).
_owners: dict[str, weakref.ref[Any]] = {}
_lock = threading.Lock()
_thread: threading.Thread | None = None


def register(monitor: Any) -> None:
    global _thread
    # When a version is unloaded or replaced its handler, and so its monitor, goes away: drop its series
    # then, or a dashboard and an alert would keep showing the last scores of a model no longer served.
    weakref.finalize(monitor, _forget, monitor.model, monitor.version, monitor.series)
    with _lock:
        _monitors.add(monitor)
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_run, name="seqserve-drift", daemon=True)
            _thread.start()


def claim(monitor: Any) -> None:
    """``monitor`` saw traffic: it now owns its model's series; the previous owner is retired."""
    with _lock:
        previous_ref = _owners.get(monitor.model)
        previous = previous_ref() if previous_ref is not None else None
        if previous is monitor:
            return
        _owners[monitor.model] = weakref.ref(monitor)
    if previous is not None:
        previous.retire(remove_series=previous.version != monitor.version)
    monitor.retired = False


def _forget(model: str, version: int, series: list[tuple[str, str]]) -> None:
    """A monitor was garbage collected: remove its series unless a live monitor shares its labels."""
    if any(m.model == model and m.version == version for m in list(_monitors)):
        return
    metrics.remove(model, version, series)


def _due(now: float) -> list[Any]:
    return [m for m in list(_monitors) if not m.retired and now - m.last_refresh >= m.refresh_seconds]


def _run() -> None:
    while True:
        for monitor in _due(time.monotonic()):
            try:
                monitor.refresh()
            except Exception:  # a broken refresh must not stop the others, nor serving
                logger.exception("drift refresh failed: model=%s version=%s", monitor.model, monitor.version)
        intervals = [m.refresh_seconds for m in list(_monitors)] or [1.0]
        time.sleep(min(max(min(intervals) / 4, 0.05), 1.0))
