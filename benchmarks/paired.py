"""Ratios to a layout ceiling measured next to the load, in alternating rounds.

This VM's host changes speed from minute to minute (docs/performance.md). In round 7's run 3 the model
itself ran 14% slower per row during the 64-connection forecast phase than in the ceiling's loop a few
minutes earlier (0.309 against 0.271 core-ms per row, the same session code), and target 12.1 failed at
0.570 between runs at 0.634-0.653. A ratio of two numbers measured minutes apart carries that drift.

Here the ceiling (at the best batch of the start-of-run sweep, N processes x 1 thread) and the service's
load alternate in short rounds: ceiling, load, ceiling, load, ..., ceiling. Each load round is divided by
the mean of the ceilings just before and after it, and the ratio is the median over the rounds. The
start-of-run ratio stays in the report (its ratios line), so a reader sees both.
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import layout_ceiling, loadgen, payloads, sentiment_ceiling

CONNECTIONS = 64  # the targets' concurrency


def paired_ratio(
    load_round: Callable[[], float], ceiling: Callable[[], float], rounds: int
) -> dict[str, Any]:
    """Alternate ``ceiling()`` and ``load_round()`` (both rows/s), starting and ending with the ceiling.

    ``ceiling`` is whatever the load is compared with: the layout ceiling for 12.1 and 12.6, the v1 JSON
    load for target 7 (V2 binary against v1 JSON).
    """
    if rounds < 1:
        raise ValueError("at least one round is needed")
    ceilings = [ceiling()]
    loads: list[float] = []
    for _ in range(rounds):
        loads.append(load_round())
        ceilings.append(ceiling())
    per_round = [
        {
            "ceiling_before": before,
            "rows_per_s": load,
            "ceiling_after": after,
            "ratio": load / ((before + after) / 2),
        }
        for load, before, after in zip(loads, ceilings, ceilings[1:], strict=False)
    ]
    return {
        "rounds": per_round,
        "ratio": statistics.median(r["ratio"] for r in per_round),
        "ceiling_spread": max(ceilings) / min(ceilings),
    }


def run(args: Any, server: Any, results: dict[str, Any], task: str, path: str, bodies: Path) -> None:
    """12.1 (``task`` "forecast") or 12.6 ("sentiment") at 64 connections, paired with its ceiling."""
    if args.paired_rounds <= 0:
        return
    measure = _ceiling_of(args, results, task)
    if measure is None:
        return
    print(
        f"{task}: {args.paired_rounds} rounds of layout ceiling and load in turn ...",
        file=sys.stderr,
        flush=True,
    )

    def load() -> float:
        return float(
            loadgen.run_wrk(server.base_url, path, bodies, CONNECTIONS, args.paired_seconds, 1)["rows_per_s"]
        )

    results.setdefault("paired", {})[task] = {
        "connections": CONNECTIONS,
        **paired_ratio(load, measure, args.paired_rounds),
    }


def run_v2_binary(args: Any, server: Any, results: dict[str, Any], v1: Path, v2: Path, model: str) -> None:
    """Target 7 (issue 4): V2 binary against v1 JSON at 64 connections, in alternating load rounds."""
    if args.paired_rounds <= 0:
        return
    print(
        f"v2 binary: {args.paired_rounds} rounds of v1 JSON and V2 binary load in turn ...", file=sys.stderr
    )

    def json_load() -> float:
        r = loadgen.run_wrk(server.base_url, "/v1/forecast", v1, CONNECTIONS, args.paired_seconds, 1)
        return float(r["rows_per_s"])

    def binary_load() -> float:
        path = f"/v2/models/{model}/infer"
        r = loadgen.run_wrk(
            server.base_url, path, v2, CONNECTIONS, args.paired_seconds, 1, script=loadgen.V2_LUA_SCRIPT
        )
        return float(r["rows_per_s"])

    results.setdefault("paired", {})["v2_binary"] = {
        "connections": CONNECTIONS,
        **paired_ratio(binary_load, json_load, args.paired_rounds),
    }


def _ceiling_of(args: Any, results: dict[str, Any], task: str) -> Callable[[], float] | None:
    """The start-of-run layout ceiling's best batch, measured again for ``paired_ceiling_seconds``."""
    seconds, workers = args.paired_ceiling_seconds, args.workers
    if task == "forecast":
        layout = results.get("layout_ceiling")
        if not layout:
            return None
        model = args.models / args.forecaster / args.fp32_version / "model.onnx"
        contexts, best = payloads.load_m4_series(args.context_length), [int(layout["best_batch"])]
        return lambda: float(
            layout_ceiling.measure_processes(model, contexts, best, seconds, workers, 1)["rows_per_s"]
        )
    layout = results.get("sentiment_layout_ceiling")
    if not layout:
        return None
    version_dir = args.models / layout["model"] / str(layout["version"]).removeprefix("v")
    texts, best = payloads.short_reviews(payloads.BODY_VARIANTS), [int(layout["best_batch"])]
    return lambda: float(
        sentiment_ceiling.measure_processes(version_dir, texts, best, seconds, workers, 1)["rows_per_s"]
    )
