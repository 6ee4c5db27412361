"""``python -m training profile-batch DIR``: the number of rows per ``session.run`` that costs least.

Bigger is not always better on CPU. The forecaster's LSTM computes its input projections for all
336 steps of every row up front; past a few rows that buffer outgrows the core's cache and the cost
*per row* rises again (2-core dev VM, one intra-op thread: about 0.50 ms per row at 4 rows, 0.62-0.8
ms at 32-64). The sentiment BiLSTM, with short inputs, is flat from about 8 rows on.

So this is a property of the model on a kind of hardware, measured once and recorded in the manifest
as ``serving``: rows/s at each batch size on real inputs, the execution provider and thread count of
the measurement, and ``preferred_batch_size``, the size with the highest median rate. The service
still coalesces requests into micro-batches of up to ``max_batch_size`` rows, then runs each batch as
``session.run`` calls of at most ``preferred_batch_size`` rows when it uses the same provider
(``SEQSERVE_BATCH_SIZE_HINTS``). One intra-op thread, as the service runs each model with one worker
per core.
"""

from __future__ import annotations

import json
import logging
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from training.quantize_checks import Feeds, task_adapter

logger = logging.getLogger(__name__)

PROFILE_BATCHES = (1, 2, 4, 8, 16, 32, 64)
PROVIDER = "CPUExecutionProvider"


def cpu_session(model_path: Path, intra_op_threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(model_path), options, providers=[PROVIDER])


def take_rows(feeds: Feeds, batch: int) -> Feeds:
    """The first ``batch`` rows of every input, repeating the rows when there are fewer."""
    out = {}
    for name, array in feeds.items():
        reps = -(-batch // array.shape[0])
        tiled = np.concatenate([array] * reps) if reps > 1 else array
        out[name] = np.ascontiguousarray(tiled[:batch])
    return out


def timed_rate(session: ort.InferenceSession, feeds: Feeds, batch: int, seconds: float) -> float:
    """rows/s over whole calls for at least ``seconds``."""
    calls, started = 0, time.perf_counter()
    while True:
        session.run(None, feeds)
        calls += 1
        elapsed = time.perf_counter() - started
        if elapsed >= seconds:
            return calls * batch / elapsed


def profile(
    model_path: Path,
    feeds: Feeds,
    batches: Sequence[int] = PROFILE_BATCHES,
    seconds_per_batch: float = 2.0,
    rounds: int = 10,
    intra_op_threads: int = 1,
) -> dict[str, Any]:
    session = cpu_session(model_path, intra_op_threads)
    by_batch = {b: take_rows(feeds, b) for b in batches}
    for batch_feeds in by_batch.values():
        session.run(None, batch_feeds)  # first call allocates; not timed
    # Rounds visit every batch size in turn, so a slow spell of a shared machine hits all sizes alike.
    samples: dict[int, list[float]] = {b: [] for b in batches}
    for _ in range(rounds):
        for batch, batch_feeds in by_batch.items():
            samples[batch].append(timed_rate(session, batch_feeds, batch, seconds_per_batch / rounds))
    rates = {b: float(statistics.median(r)) for b, r in samples.items()}
    for batch, rate in rates.items():
        logger.info("batch %4d: %8.0f rows/s", batch, rate)
    return {
        "preferred_batch_size": max(rates, key=rates.__getitem__),
        "provider": PROVIDER,
        "intra_op_threads": intra_op_threads,
        "rows_per_s": {str(b): round(r, 1) for b, r in rates.items()},
        "rule": f"batch size with the highest median rows/s over {rounds} interleaved rounds",
        "onnxruntime": ort.__version__,
    }


def profile_version(version_dir: Path, seconds_per_batch: float = 2.0) -> dict[str, Any]:
    """Measure a version on the real inputs its quantization checks use; record it in model.json."""
    manifest_path = version_dir / "model.json"
    manifest = json.loads(manifest_path.read_text())
    feeds, _ = task_adapter(manifest, version_dir).invariance_feeds()
    serving = profile(version_dir / "model.onnx", feeds, seconds_per_batch=seconds_per_batch)
    manifest["serving"] = serving
    # model.json is not among its own checksummed files, so the rest of the manifest stays valid.
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return serving
