"""``GET /metrics`` through prometheus_client's own ASGI app, in single- or multi-process mode.

Single process: the default registry (our metrics plus the process, platform and GC collectors).

Several uvicorn workers (``SEQSERVE_WORKERS > 1``): a scrape reaches one worker at random, so each
worker's own registry would be wrong. ``prepare_multiprocess`` (called by the launcher before the
workers start) points ``PROMETHEUS_MULTIPROC_DIR`` at an empty directory; workers then write samples
to mmap files there, and every worker's ``/metrics`` merges all files with ``MultiProcessCollector``.
prometheus_client's process collector only sees the scraped worker, so ``WorkerProcessCollector``
reports ``process_*`` for every live worker with a ``pid`` label (bounded by the worker count;
``sum by (instance)`` in the dashboard adds them up, and ``rate()`` handles a restarted worker).
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from functools import partial
from pathlib import Path

from prometheus_client import REGISTRY, CollectorRegistry, ProcessCollector, make_asgi_app
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Receive, Scope, Send

from service.metrics import multiprocess_enabled

ENV = "PROMETHEUS_MULTIPROC_DIR"
_PID_IN_FILENAME = re.compile(r"_(\d+)\.db$")


def prepare_multiprocess(workers: int) -> Path | None:
    """Call in the launcher before workers start: returns the directory when multiprocess mode is on.

    With ``workers > 1`` and no ``PROMETHEUS_MULTIPROC_DIR``, a fresh temporary directory is used (and
    removed when the launcher exits). An existing directory is emptied of ``*.db`` files: a previous
    run's counters must not be added to this run's (the directory must belong to this service alone).
    """
    configured = os.environ.get(ENV)
    if configured is None and workers <= 1:
        return None
    if configured:
        directory = Path(configured)
    else:
        directory = Path(tempfile.mkdtemp(prefix="seqserve-metrics-"))
        # Ours alone, so removed when the launcher exits (workers are spawned: they do not inherit this).
        # Without it every start leaves a folder behind, and a host restarting replicas collects them.
        atexit.register(shutil.rmtree, directory, ignore_errors=True)
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()
    os.environ[ENV] = str(directory)
    return directory


def mark_worker_exit() -> None:
    """On a worker's clean shutdown, drop its live gauges (in-flight, queue rows, info) from the merge."""
    if multiprocess_enabled():
        mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


class WorkerProcessCollector(Collector):
    """``process_*`` metrics of every live worker that has written to the multiprocess directory."""

    def __init__(self, directory: str) -> None:
        self._directory = Path(directory)

    def collect(self) -> Iterator[Metric]:
        merged: dict[str, Metric] = {}
        for pid in self._live_pids():
            for family in ProcessCollector(pid=partial(int, pid), registry=None).collect():
                target = merged.setdefault(
                    family.name, Metric(family.name, family.documentation, family.type)
                )
                for sample in family.samples:
                    target.add_sample(sample.name, {**sample.labels, "pid": str(pid)}, sample.value)
        yield from merged.values()

    def _live_pids(self) -> list[int]:
        pids = set()
        for path in self._directory.glob("*.db"):
            match = _PID_IN_FILENAME.search(path.name)
            if match and Path(f"/proc/{match.group(1)}").exists():
                pids.add(int(match.group(1)))
        return sorted(pids)


def _exposition_registry() -> CollectorRegistry:
    if not multiprocess_enabled():
        return REGISTRY
    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    registry.register(WorkerProcessCollector(os.environ[ENV]))
    return registry


class MetricsEndpoint:
    """An ASGI app object (not a function), so Starlette mounts it as-is on the ``/metrics`` route."""

    def __init__(self) -> None:
        self._app: ASGIApp = make_asgi_app(_exposition_registry())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._app(scope, receive, send)
