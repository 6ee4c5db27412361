"""The in-process ONNX Runtime ceiling: rows/s of ``session.run`` alone, no HTTP, no Python around it.

``python -m benchmarks.ceiling models/m4-hourly/1 models/m4-hourly/2 --batches 64 256`` prints it for
any model versions (forecasters only: one FP32 input [B, T]).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from benchmarks.payloads import load_m4_series


def session(model_path: Path, intra_op_threads: int) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.intra_op_num_threads = intra_op_threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(model_path), opts, providers=["CPUExecutionProvider"])


def rows_for(contexts: np.ndarray, batch: int) -> np.ndarray:
    """``batch`` real rows (repeating the set if it is smaller)."""
    reps = -(-batch // len(contexts))
    return np.ascontiguousarray(np.tile(contexts, (reps, 1))[:batch], dtype=np.float32)


def feeds_by_batch(
    sess: ort.InferenceSession, contexts: np.ndarray, batches: Sequence[int]
) -> dict[int, Any]:
    name = sess.get_inputs()[0].name
    all_feeds = {batch: {name: rows_for(contexts, batch)} for batch in batches}
    for feeds in all_feeds.values():
        for _ in range(3):
            sess.run(None, feeds)
    return all_feeds


def timed_rounds(
    sess: ort.InferenceSession, all_feeds: dict[int, Any], rounds: int, seconds_per_batch: float
) -> dict[int, list[float]]:
    """rows/s of each round per batch size.

    Each round visits every batch size in turn, so a slow spell of a shared machine lands on all of
    them alike instead of deciding which batch size looks best.
    """
    rates: dict[int, list[float]] = {batch: [] for batch in all_feeds}
    for _ in range(rounds):
        for batch, feeds in all_feeds.items():
            # A list of feeds runs in turn (sentiment: batches over all the reviews, of different lengths).
            cycle = feeds if isinstance(feeds, list) else [feeds]
            calls, start = 0, time.perf_counter()
            while True:
                sess.run(None, cycle[calls % len(cycle)])
                calls += 1
                elapsed = time.perf_counter() - start
                if elapsed >= seconds_per_batch / rounds:
                    break
            rates[batch].append(calls * batch / elapsed)
    return rates


def summarize(rates: dict[int, tuple[float, float]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Points from (median, best) rows/s per batch size, and the best point (highest median)."""
    points = [
        {"batch": batch, "rows_per_s_median": median, "rows_per_s_best": best,
         "ms_per_batch_median": 1000.0 * batch / median}
        for batch, (median, best) in rates.items()
    ]  # fmt: skip
    return points, max(points, key=lambda p: p["rows_per_s_median"])


def measure(
    model_path: Path,
    contexts: np.ndarray,
    batches: Sequence[int],
    seconds_per_batch: float,
    intra_op_threads: int,
    rounds: int = 5,
) -> dict[str, Any]:
    """rows/s per batch size: the median and the best of ``rounds`` timed rounds."""
    sess = session(model_path, intra_op_threads)
    rates = timed_rounds(sess, feeds_by_batch(sess, contexts, batches), rounds, seconds_per_batch)
    points, best = summarize({b: (statistics.median(r), max(r)) for b, r in rates.items()})
    return {
        "model": str(model_path),
        "context_length": int(contexts.shape[1]),
        "intra_op_threads": intra_op_threads,
        "inter_op_threads": 1,
        "rounds": rounds,
        "points": points,
        "best_batch": best["batch"],
        "rows_per_s": best["rows_per_s_median"],
        "rows_per_s_best_round": best["rows_per_s_best"],
    }


def batch1_run_ms(
    model_path: Path, contexts: np.ndarray, calls: int = 300, threads: int = 1
) -> dict[str, Any]:
    """Median (and p10/p90) wall ms of one ``session.run`` on one row: the floor under a 1-client p50."""
    sess = session(model_path, threads)
    name = sess.get_inputs()[0].name
    rows = [{name: np.ascontiguousarray(contexts[i % len(contexts)][None, :])} for i in range(calls)]
    for feeds in rows[:10]:
        sess.run(None, feeds)
    times = []
    for feeds in rows:
        start = time.perf_counter()
        sess.run(None, feeds)
        times.append(1000.0 * (time.perf_counter() - start))
    q = statistics.quantiles(times, n=10)
    return {"intra_op_threads": threads, "calls": calls, "median_ms": statistics.median(times),
            "p10_ms": q[0], "p90_ms": q[-1]}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ceiling")
    parser.add_argument("version_dirs", nargs="+", type=Path)
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 2, 4, 8, 16, 32, 64, 128, 256])
    parser.add_argument("--seconds", type=float, default=2.0, help="per batch size")
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads")
    parser.add_argument("--context-length", type=int, default=336)
    args = parser.parse_args(argv)
    contexts = load_m4_series(args.context_length)
    results = []
    for d in args.version_dirs:
        r = measure(d / "model.onnx", contexts, args.batches, args.seconds, args.threads)
        results.append(r)
        for p, ref in zip(r["points"], results[0]["points"], strict=True):
            print(
                f"{d!s:24} batch {p['batch']:4d}  {p['rows_per_s_median']:8.0f} rows/s median"
                f" ({p['rows_per_s_median'] / ref['rows_per_s_median']:.2f}x)"
                f"  {p['rows_per_s_best']:8.0f} best  {p['ms_per_batch_median']:7.2f} ms/batch"
            )
    base = results[0]
    for r, d in zip(results, args.version_dirs, strict=True):
        print(
            f"{d!s:24} ceiling {r['rows_per_s']:8.0f} rows/s at batch {r['best_batch']}"
            f"  ({r['rows_per_s'] / base['rows_per_s']:.2f}x {args.version_dirs[0]})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
