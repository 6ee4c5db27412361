"""CPU accounting of drift monitoring, in process: what one forecast row costs the monitor.

The A/B in ``drift_ab.py`` measures the target directly (rows/s on vs off), but on a shared 2-core
machine its rounds swing by +-15%, far more than the 3% it has to resolve. This counts the monitor's
own work instead, with the service's real monitor (``service.drift.loader.drift_observer``), the real
profile of the served version, real M4 rows and the model's real outputs:

* ``observe`` while the queue has room (the request path: append under a lock);
* ``observe`` once ``drift_rows_per_refresh`` rows are queued (the request path: count and return);
* one ``refresh`` of a full queue into a full window (the refresher thread: features, PSI, gauges).

With the service's rows/s ``R`` and refresh interval ``T``, an interval holds ``n = R*T`` rows, of
which ``q = min(n, rows_per_refresh)`` are queued; the monitor's CPU per served row is
``(q*queued + (n-q)*skipped + refresh) / n``. Set against the CPU the service spends per row with
monitoring off (from the A/B), that share bounds the throughput cost: ``on/off >= 1 / (1 + share)``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from benchmarks import payloads
from service.config import Settings
from service.drift.loader import drift_observer
from service.drift.monitor import DriftMonitor
from service.runtime.manifest import load_manifest


def _cpu_per_call(fn: Callable[[], None], calls: int) -> float:
    start = time.process_time()
    for _ in range(calls):
        fn()
    return (time.process_time() - start) / calls


def _rows(version_dir: Path, context_length: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Real series [count, context] and the model's real quantiles for them."""
    bodies = payloads.forecast_bodies(context_length, 1, count)
    values = np.asarray([json.loads(b)["series"][0]["values"] for b in bodies], dtype=np.float32)
    session = ort.InferenceSession(str(version_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    out = np.concatenate([session.run(None, {name: values[s : s + 64]})[0] for s in range(0, count, 64)])
    return values, out


def _monitor(version_dir: Path, settings: Settings) -> DriftMonitor:
    observer = drift_observer(load_manifest(version_dir), version_dir, settings)
    if not isinstance(observer, DriftMonitor):
        raise RuntimeError(f"{version_dir}: drift monitoring is not set up ({observer!r})")
    return observer


def measure(version_dir: Path, context_length: int, calls: int = 20_000) -> dict[str, Any]:
    """Seconds of CPU per ``observe`` (queued, skipped) and per ``refresh`` of a full queue."""
    settings = Settings(drift_enabled=True)
    per_refresh = settings.drift_rows_per_refresh
    values, out = _rows(version_dir, context_length, 512)
    requests = [(values[i : i + 1], out[i : i + 1]) for i in range(len(values))]

    monitor = _monitor(version_dir, settings)
    index = iter(range(10**9))

    def queued() -> None:
        i = next(index)
        if i % per_refresh == 0:  # keep the queue below its cap without timing a refresh
            monitor._queue, monitor._queued_rows = [], 0
        inputs, outputs = requests[i % len(requests)]
        monitor.observe(inputs, outputs)

    queued_s = _cpu_per_call(queued, calls)

    monitor._queue, monitor._queued_rows = [], 0
    for i in range(per_refresh):
        monitor.observe(*requests[i % len(requests)])
    skipped_s = _cpu_per_call(lambda: monitor.observe(*requests[0]), calls)

    # A full window first, so the refresh timed bins window_rows rows as it does in steady state.
    for _ in range(settings.drift_window_rows // per_refresh + 1):
        for i in range(per_refresh):
            monitor._queue.append(requests[i % len(requests)])
        monitor._queued_rows = per_refresh
        monitor.refresh()
    refreshes = []
    for _ in range(5):
        for i in range(per_refresh):
            monitor._queue.append(requests[i % len(requests)])
        monitor._queued_rows = per_refresh
        start = time.process_time()
        monitor.refresh()
        refreshes.append(time.process_time() - start)
    return {
        "observe_queued_us": queued_s * 1e6,
        "observe_skipped_us": skipped_s * 1e6,
        "refresh_ms": float(np.median(refreshes)) * 1e3,
        "rows_per_refresh": per_refresh,
        "refresh_seconds": settings.drift_refresh_seconds,
        "window_rows": settings.drift_window_rows,
    }


def share(costs: dict[str, Any], rows_per_s: float, server_cpu_cores: float) -> dict[str, float]:
    """The monitor's CPU per served row, as a share of the service's CPU per row with monitoring off."""
    n = rows_per_s * costs["refresh_seconds"]
    q = min(n, costs["rows_per_refresh"])
    monitor_us = (
        q * costs["observe_queued_us"] + (n - q) * costs["observe_skipped_us"] + costs["refresh_ms"] * 1e3
    ) / n
    service_us = server_cpu_cores / rows_per_s * 1e6
    fraction = monitor_us / service_us
    return {
        "monitor_cpu_us_per_row": monitor_us,
        "service_cpu_us_per_row_off": service_us,
        "share": fraction,
        "bound_on_off_ratio": 1.0 / (1.0 + fraction),
    }
