"""The teacher's logits on a transfer set, cached on disk in chunks.

Labelling is the dearest stage of ``sst2-distill`` (~260 sentences/s per core), so a second student
trained on the same transfer set should not pay for it again. The cache key is a sha256 of the
teacher's weights file, its configuration and the exact sentences the teacher reads, so a change to
any of them (augmentation seed, variants per sentence, cap, masks) labels afresh instead of reusing
logits that belong to other inputs.

The logits are written in chunks, each renamed into place once complete: a run stopped part-way (for
example to restart it with fewer threads) resumes at the first missing chunk and never reads a
half-written file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

CHUNK = 20_000
Labeller = Callable[[Sequence[str]], np.ndarray]


def transfer_key(teacher_file: Path, teacher_config: object, texts: Sequence[str]) -> str:
    """sha256 over the teacher's weights, its configuration and the sentences, in order."""
    h = hashlib.sha256()
    with teacher_file.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    h.update(json.dumps(teacher_config, sort_keys=True).encode())
    for t in texts:
        # A separator no sentence contains, so ["a b", "c"] and ["a", "b c"] hash differently.
        h.update(t.encode())
        h.update(b"\0")
    return h.hexdigest()


def _chunk_path(folder: Path, index: int) -> Path:
    return folder / f"logits-{index:05d}.npy"


def _chunk_info(folder: Path, index: int) -> Path:
    return folder / f"logits-{index:05d}.json"


def cached_logits(
    texts: Sequence[str], label: Labeller, folder: Path, chunk: int = CHUNK, threads: int = 0
) -> tuple[np.ndarray, dict[str, object]]:
    """Logits [N, C] of ``texts`` in order; chunks already in ``folder`` are read, not relabelled.

    ``threads`` is only recorded beside each chunk. Returns the logits and a record of the work:
    chunks read from the cache, chunks labelled now, the seconds of this call, and the labelling
    seconds of all chunks, whichever run labelled them.
    """
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "meta.json").write_text(json.dumps({"sentences": len(texts), "chunk": chunk}) + "\n")
    parts: list[np.ndarray] = []
    reused = labelled = 0
    start = time.monotonic()
    first_lo = 0  # start of the first chunk labelled in this call, for its rate
    n_chunks = (len(texts) + chunk - 1) // chunk
    for index in range(n_chunks):
        lo, hi = index * chunk, min(len(texts), (index + 1) * chunk)
        path = _chunk_path(folder, index)
        if path.exists():
            part = np.load(path)
            if part.shape[0] != hi - lo:
                raise ValueError(f"{path}: {part.shape[0]} rows, expected {hi - lo}")
            reused += 1
        else:
            t0 = time.monotonic()
            part = np.asarray(label(texts[lo:hi]), dtype=np.float32)
            # The time beside the chunk, so a resumed run still reports the whole labelling cost.
            _chunk_info(folder, index).write_text(
                json.dumps({"seconds": round(time.monotonic() - t0, 2), "threads": threads}) + "\n"
            )
            tmp = path.with_suffix(".tmp.npy")
            np.save(tmp, part)
            os.replace(tmp, path)
            labelled += 1
            rate = (hi - first_lo) / max(time.monotonic() - start, 1e-9)
            log.info(
                "labelled chunk %d/%d (%.0f sentences/s, ETA %.0fs)",
                index + 1,
                n_chunks,
                rate,
                (len(texts) - hi) / max(rate, 1e-9),
            )
        if labelled == 0:
            first_lo = hi
        parts.append(part)
    seconds = time.monotonic() - start
    logits = np.concatenate(parts) if parts else np.zeros((0, 2), dtype=np.float32)
    infos = [json.loads(_chunk_info(folder, i).read_text()) for i in range(n_chunks)]
    record: dict[str, object] = {
        "chunks": n_chunks,
        "chunks_reused": reused,
        "chunks_labelled": labelled,
        "label_seconds_this_run": round(seconds, 1),
        # Every chunk's own labelling time, whichever run labelled it.
        "label_seconds_total": round(sum(float(i["seconds"]) for i in infos), 1),
        "label_threads": sorted({int(i["threads"]) for i in infos}),
    }
    return logits, record
