"""Sentiment's own layout ceiling: N processes x 1 thread running batches of real, tokenized reviews.

The service's sentiment path tokenizes with the model's tokenizer.json, keeps the first max_tokens
ids and right-pads each micro-batch to its longest row; the feeds here are built the same way from the
same SST-2 test sentences the load phases send, so rows/s at 64 connections can be read against it.
Each batch size runs over all of those sentences, as the load phases send all of them. Batches are
consecutive sentences, as a user batching requests in arrival order would run them; the service
orders a micro-batch's rows by length before cutting it into runs (service/runtime/parts.py), which
this ceiling does not, so that saving shows in the ratio rather than in the reference.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import statistics
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.ceiling import session, summarize, timed_rounds

_barrier: Any = None


def _init(barrier: Any) -> None:
    global _barrier
    _barrier = barrier


def feeds_by_batch(version_dir: Path, texts: Sequence[str], batches: Sequence[int]) -> dict[int, Any]:
    from tokenizers import Tokenizer

    manifest = json.loads((version_dir / "model.json").read_text())
    params = manifest["parameters"]
    ids_name, lengths_name = (spec["name"] for spec in manifest["inputs"])
    tokenizer = Tokenizer.from_file(str(version_dir / params["tokenizer"]))
    encoded = [e.ids[: params["max_tokens"]] for e in tokenizer.encode_batch(list(texts))]
    out = {}
    for batch in batches:
        # Every batch size runs over all the reviews, consecutive ones together (cycling when a batch
        # is larger than the set): reviews differ in length, and batch 4 built from the first four
        # alone would measure those four reviews rather than the batch size.
        out[batch] = [
            _padded([encoded[(start + i) % len(encoded)] for i in range(batch)], params["pad_id"],
                    ids_name, lengths_name)
            for start in range(0, max(len(encoded), batch), batch)
        ]  # fmt: skip
    return out


def _padded(rows: list[list[int]], pad_id: int, ids_name: str, lengths_name: str) -> dict[str, Any]:
    ids = np.full((len(rows), max(len(r) for r in rows)), pad_id, dtype=np.int64)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = r
    return {ids_name: ids, lengths_name: np.asarray([len(r) for r in rows], dtype=np.int64)}


def _one_process(
    version_dir: Path, texts: Sequence[str], batches: Sequence[int], seconds: float, rounds: int
) -> dict[int, tuple[float, float]]:
    sess = session(version_dir / "model.onnx", 1)
    all_feeds = feeds_by_batch(version_dir, texts, batches)
    for cycle in all_feeds.values():
        for feeds in cycle:
            sess.run(None, feeds)
    _barrier.wait(timeout=300)
    rates = timed_rounds(sess, all_feeds, rounds, seconds)
    return {b: (statistics.median(r), max(r)) for b, r in rates.items()}


def measure_processes(
    version_dir: Path,
    texts: Sequence[str],
    batches: Sequence[int],
    seconds_per_batch: float,
    processes: int,
    rounds: int = 5,
) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(processes)
    with ProcessPoolExecutor(processes, mp_context=ctx, initializer=_init, initargs=(barrier,)) as pool:
        futures = [
            pool.submit(_one_process, version_dir, list(texts), batches, seconds_per_batch, rounds)
            for _ in range(processes)
        ]
        per_process = [f.result() for f in futures]
    totals = {b: (sum(p[b][0] for p in per_process), sum(p[b][1] for p in per_process)) for b in batches}
    points, best = summarize(totals)
    return {
        "model": str(version_dir / "model.onnx"),
        "processes": processes,
        "intra_op_threads": 1,
        "rounds": rounds,
        "points": points,
        "best_batch": best["batch"],
        "rows_per_s": best["rows_per_s_median"],
    }
