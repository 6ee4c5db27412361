"""Drift gauges. Same conventions as ``service.metrics`` (prefix, bounded labels, pre-created series).

Multiprocess mode (``SEQSERVE_WORKERS > 1``): each worker keeps its own window of the rows it served
(SO_REUSEPORT spreads connections evenly), and the exposition merges workers: the PSI gauges take the
maximum over live workers (``livemax``: any worker seeing drift raises the alarm), the window rows add
up (``livesum``).
"""

from __future__ import annotations

from prometheus_client import Gauge

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
