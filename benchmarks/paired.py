"""Target 12.1 in interleaved pairs: the service at 64 connections next to its layout ceiling, in turn.

The layout ceiling sweep runs first in ``bin/bench`` and the 64-connection phase a few minutes later.
This VM's host speed drifts by more than 12.1's margin within such a span: across ten runs of the same
code the service's own ``session.run`` cost per row moved from 0.265 to 0.298 core-ms while the sweep's
stayed at 0.264-0.272 (docs/performance.md, round 5). A ratio of two numbers taken minutes apart then
says as much about the host as about the service.

So, with the service up, each round measures both for the same few seconds, one right after the other
(the order alternates by round): N processes x 1 thread at the sweep's best batch size, and wrk with
64 connections and the same single-series bodies. The ratio is taken per round, and the median over
rounds is reported, as ``benchmarks.ab`` does for A/Bs. The sweep-based ratio stays in the table.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import layout_ceiling, loadgen
from benchmarks.server import Server


def measure(
    server: Server,
    path: str,
    bodies: Path,
    model_path: Path,
    contexts: np.ndarray,
    batch: int,
    processes: int,
    rounds: int,
    seconds: int,
) -> dict[str, Any]:
    pairs: list[dict[str, float]] = []
    for r in range(rounds):
        print(f"paired round {r + 1}/{rounds}: ceiling at batch {batch} and 64 connections ...",
              file=sys.stderr, flush=True)  # fmt: skip
        pair: dict[str, float] = {}
        steps = ("ceiling", "service") if r % 2 == 0 else ("service", "ceiling")
        for step in steps:
            if step == "ceiling":
                layout = layout_ceiling.measure_processes(
                    model_path, contexts, [batch], seconds, processes, rounds=1
                )
                pair["ceiling_rows_per_s"] = float(layout["rows_per_s"])
            else:
                run = loadgen.run_wrk(server.base_url, path, bodies, 64, seconds, 1)
                pair["service_rows_per_s"] = float(run["rows_per_s"])
                pair["service_p99_ms"] = float(run["latency_ms"]["p99"])
        pair["ratio"] = pair["service_rows_per_s"] / pair["ceiling_rows_per_s"]
        pairs.append(pair)
    return {
        "batch": batch,
        "processes": processes,
        "seconds": seconds,
        "rounds": pairs,
        "ratio_median": statistics.median(p["ratio"] for p in pairs),
        "service_rows_per_s_median": statistics.median(p["service_rows_per_s"] for p in pairs),
        "ceiling_rows_per_s_median": statistics.median(p["ceiling_rows_per_s"] for p in pairs),
    }
