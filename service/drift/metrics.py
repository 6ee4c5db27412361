"""Drift gauges. Same conventions as ``service.metrics`` (prefix, bounded labels, pre-created series).

Multiprocess mode (``SEQSERVE_WORKERS > 1``): each worker keeps its own window of the rows it served
(SO_REUSEPORT spreads connections evenly), and the exposition merges workers: the PSI gauges take the
maximum over live workers (``livemax``: any worker seeing drift raises the alarm), the window rows add
up (``livesum``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from prometheus_client import Gauge

from service.metrics import multiprocess_enabled

INPUT_PSI = Gauge(
    "seqserve_input_drift_psi",
    "Population stability index of an input feature over the drift window vs the training reference "
    "(0.1 watch, 0.25 act).",
    ["model", "version", "feature"],
    multiprocess_mode="livemax",
)
OUTPUT_PSI = Gauge(
    "seqserve_output_drift_psi",
    "Population stability index of an output feature over the drift window vs the training reference "
    "(0.1 watch, 0.25 act).",
    ["model", "version", "feature"],
    multiprocess_mode="livemax",
)
WINDOW_ROWS = Gauge(
    "seqserve_drift_window_rows",
    "Rows (series or texts) in the drift window the PSI gauges were computed on.",
    ["model", "version"],
    multiprocess_mode="livesum",
)


def psi_gauge(side: str) -> Gauge:
    return INPUT_PSI if side == "input" else OUTPUT_PSI


def publish(model: str, version: int, rows: int, scores: Sequence[tuple[str, str, float]]) -> None:
    """Set one version's series; ``scores`` holds (side, feature, psi).

    Children are looked up on every call (every few seconds, not per request): a series removed when
    another monitor of the same model retired must come back, not be set on a detached child.
    """
    WINDOW_ROWS.labels(model, str(version)).set(rows)
    for side, feature, score in scores:
        psi_gauge(side).labels(model, str(version), feature).set(score)


def remove(model: str, version: int, features: Sequence[tuple[str, str]]) -> None:
    """Drop one version's series (0 in multiprocess mode, where prometheus_client cannot remove)."""
    if multiprocess_enabled():
        publish(model, version, 0, [(side, name, 0.0) for side, name in features])
        return
    for gauge, labels in [(WINDOW_ROWS, (model, str(version)))] + [
        (psi_gauge(side), (model, str(version), name)) for side, name in features
    ]:
        with contextlib.suppress(KeyError):  # already gone
            gauge.remove(*labels)
