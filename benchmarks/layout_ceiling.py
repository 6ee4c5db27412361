"""The ceiling of the service's own layout: N processes, one ORT intra-op thread each, all at once.

The in-process ceiling that issue 4 defines (one session, 2 intra-op threads) is not the most this
machine can do with the model: two single-thread sessions in two processes, as the service runs them
with 2 workers, avoid the intra-op threads' synchronisation on every LSTM step, which small batches pay
heavily (and more so when the VM's vCPUs are contended). The benchmark prints this layout ceiling next
to the defined one, so the service can also be read against what its own layout could reach.

Each process builds its session and warms up, waits at a barrier, then runs the same interleaved
rounds as ``benchmarks.ceiling``; per batch size, the processes' median (and best) rows/s are added.
"""

from __future__ import annotations

import multiprocessing as mp
import statistics
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.ceiling import feeds_by_batch, session, summarize, timed_rounds

_barrier: Any = None


def _init(barrier: Any) -> None:
    global _barrier
    _barrier = barrier


def _one_process(
    model_path: Path, contexts: np.ndarray, batches: Sequence[int], seconds: float, rounds: int
) -> dict[int, tuple[float, float]]:
    sess = session(model_path, 1)
    all_feeds = feeds_by_batch(sess, contexts, batches)
    _barrier.wait(timeout=300)
    rates = timed_rounds(sess, all_feeds, rounds, seconds)
    return {b: (statistics.median(r), max(r)) for b, r in rates.items()}


def measure_processes(
    model_path: Path,
    contexts: np.ndarray,
    batches: Sequence[int],
    seconds_per_batch: float,
    processes: int,
    rounds: int = 5,
) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(processes)
    with ProcessPoolExecutor(processes, mp_context=ctx, initializer=_init, initargs=(barrier,)) as pool:
        futures = [
            pool.submit(_one_process, model_path, contexts, batches, seconds_per_batch, rounds)
            for _ in range(processes)
        ]
        per_process = [f.result() for f in futures]
    totals = {b: (sum(p[b][0] for p in per_process), sum(p[b][1] for p in per_process)) for b in batches}
    points, best = summarize(totals)
    return {
        "model": str(model_path),
        "processes": processes,
        "intra_op_threads": 1,
        "rounds": rounds,
        "points": points,
        "best_batch": best["batch"],
        "rows_per_s": best["rows_per_s_median"],
    }
