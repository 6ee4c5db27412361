"""Reference profiles for drift monitoring: ``profile.json`` beside the graph, covered by the checksums.

``python -m training profile-data models/<name>/<version>`` (also run after every training, quantize
and int8 run) computes the per-task features of the model's own training data with the service's
feature code (``service.drift``, numpy only), runs the shipped ``model.onnx`` on the same rows for the
output features, bins them, and records edges and counts. The manifest gets ``"drift": {"profile":
"profile.json"}`` and a ``files`` entry for it; nothing else in model.json changes.

Reference rows (why these):
- forecast: 24 windows per training series, each the last ``context_length`` values before a random
  cut point, i.e. what a client sending its full history gives the model. The ``length`` feature is
  therefore all at ``context_length``: a share of shorter histories is what it flags.
- sentiment: the whole sentences of ``glue_dev.tsv``. SST-2's train split is mostly parse-tree phrases
  (median 7 words vs 19 for dev/test), which served reviews are not; dev is what model selection used.
- generate: 5,000 prompts cut from the training 90% of Tiny Shakespeare, each the first 1-4 lines of a
  random speech ("ROMEO:\n" ... a few lines of verse); none has a character outside the vocabulary.
- classify: 10,000 of the training images (not the validation 5,000), raw 0-255 pixels as clients send.
"""

from __future__ import annotations

import gzip
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from service.drift.extractors import (
    ClassifyExtractor,
    Extractor,
    ForecastExtractor,
    GenerateExtractor,
    Observed,
    SentimentExtractor,
)
from service.drift.profile import PROFILE_VERSION, Profile
from training.manifest import sha256_file
from training.sentiment_train import read_tsv
from training.series_io import load_long_csv, load_m4_wide

log = logging.getLogger(__name__)
REPO_ROOT = Path(__file__).resolve().parent.parent
PROFILE_FILENAME = "profile.json"
WINDOWS_PER_SERIES = 24
CHUNK_ROWS = 256
MNIST_VALIDATION = 5_000  # training/mnist_data.py holds out the last 5,000 training images
DECILES = np.linspace(0.1, 0.9, 9)
# Shares pile up at exactly 0, so fixed edges: 0, (0, 1%), [1%, 5%), [5%, 20%), [20%, 50%), >= 50%.
SHARE_EDGES = [1e-9, 0.01, 0.05, 0.2, 0.5]
# Level: a fixed grid of half decades (factor 3.2) from 0.01 to 1e8. Deciles cut through M4's clusters
# of near-identical series, and a level trend of a few percent then moved held-out windows across the
# cut (PSI 0.08 on held-out traffic vs 0.001 on this grid); a unit change moves whole decades.
LEVEL_EDGES = [k / 2 for k in range(-4, 17)]

DESCRIPTIONS = {
    "level": "log10 of the mean |x| over the context the model used",
    "cv": "coefficient of variation: std / mean |x| over the context used",
    "seasonality": "24-step seasonal strength: 1 - Var(remainder) / Var(day-centred values), in [0, 1]",
    "zeros": "share of exact zeros in the context used",
    "length": "values sent, capped at context_length (values beyond it are not used)",
    "interval_width": "mean over the horizon of (q0.9 - q0.1) / mean |x| of the context",
    "tokens": "tokens in the text before cutting to max_tokens",
    "unk_share": "share of [UNK] among the tokens the model receives",
    "non_ascii_share": "share of characters above U+007F",
    "label": "predicted label index (one bin per label)",
    "prompt_chars": "characters in the prompt",
    "oov_rejected": "1 if the prompt has characters outside the model's vocabulary (a 422), else 0",
    "value_mean": "mean of all values of the sequence as sent (MNIST rows: pixel intensity, 0-255)",
}
OUTPUTS = {"interval_width", "label"}


# Narrowest bin per decile-binned feature, in its own units. A bin narrower than how far one series'
# feature wanders over time (a level trend, a seasonal pattern sharpening) makes next month's traffic
# from the very same series look drifted; measured on held-out M4 windows (docs/drift.md).
MIN_BIN_WIDTH = {"value_mean": 1.0, "cv": 0.1, "seasonality": 0.1, "interval_width": 0.05, "tokens": 3.0}


def _decile_edges(values: np.ndarray, min_width: float) -> list[float]:
    """Deciles of the reference, dropping any edge closer than ``min_width`` to the previous kept one."""
    kept: list[float] = []
    for edge in np.unique(np.quantile(values, DECILES)):
        if not kept or edge - kept[-1] >= min_width:
            kept.append(float(edge))
    return kept


def _session(version_dir: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(version_dir / "model.onnx"), providers=["CPUExecutionProvider"])


def _data_path(manifest: dict[str, Any], suffix: str, default: Path) -> Path:
    for entry in manifest.get("training", {}).get("data", []):
        path = entry["path"] if isinstance(entry, dict) else str(entry)
        if path.endswith(suffix):
            return REPO_ROOT / path
    return default


def forecast_observed(version_dir: Path, manifest: dict[str, Any], seed: int = 0) -> list[Observed]:
    p = manifest["parameters"]
    context = int(p["context_length"])
    training = manifest.get("training", {})
    data = training.get("data") or [{"path": "training/data/m4/Hourly-train.csv"}]
    # The training series: the first data file the manifest records, read the way training read it.
    first = data[0]["path"] if isinstance(data[0], dict) else str(data[0])
    loader = load_long_csv if training.get("data_format") == "long" else load_m4_wide
    series = loader(REPO_ROOT / first)
    rng = np.random.default_rng(seed)
    windows: list[np.ndarray] = []
    for values in series.values():
        if len(values) < context:
            continue
        ends = rng.integers(context, len(values) + 1, size=WINDOWS_PER_SERIES)
        windows.extend(values[end - context : end] for end in ends)
    rows = np.stack(windows).astype(np.float32)
    session = _session(version_dir)
    observed = []
    for start in range(0, len(rows), CHUNK_ROWS):
        chunk = rows[start : start + CHUNK_ROWS]
        observed.append((chunk, session.run(None, {manifest["inputs"][0]["name"]: chunk})[0]))
    return observed


def sentiment_observed(version_dir: Path, manifest: dict[str, Any]) -> list[Observed]:
    p = manifest["parameters"]
    texts, _ = read_tsv(_data_path(manifest, "glue_dev.tsv", REPO_ROOT / "training/data/sst2/glue_dev.tsv"))
    tokenizer = Tokenizer.from_file(str(version_dir / p["tokenizer"]))
    session = _session(version_dir)
    ids_name, lengths_name = (spec["name"] for spec in manifest["inputs"])
    observed = []
    for start in range(0, len(texts), CHUNK_ROWS):
        chunk = texts[start : start + CHUNK_ROWS]
        encodings = tokenizer.encode_batch(chunk)
        # The manifest's encoding rule, as the service applies it.
        kept = [e.ids[: p["max_tokens"]] for e in encodings]
        ids = np.full((len(kept), max(1, *map(len, kept))), p["pad_id"], dtype=np.int64)
        for row, seq in enumerate(kept):
            ids[row, : len(seq)] = seq
        lengths = np.asarray([len(s) for s in kept], dtype=np.int64)
        probs = session.run(None, {ids_name: ids, lengths_name: lengths})[0]
        observed.append(((chunk, ids, [len(e.ids) for e in encodings]), probs))
    return observed


def classify_observed(version_dir: Path, manifest: dict[str, Any], rows: int = 10_000) -> list[Observed]:
    """A seeded sample of the training images, raw 0-255 pixels as clients send them ([B, 28, 28])."""
    images = _mnist_train_images()[: 60_000 - MNIST_VALIDATION]
    pick = np.sort(np.random.default_rng(0).choice(len(images), size=min(rows, len(images)), replace=False))
    x = images[pick].astype(np.float32)
    session = _session(version_dir)
    name = manifest["inputs"][0]["name"]
    return [
        (x[start : start + CHUNK_ROWS], session.run(None, {name: x[start : start + CHUNK_ROWS]})[0])
        for start in range(0, len(x), CHUNK_ROWS)
    ]


def _mnist_train_images() -> np.ndarray:
    with gzip.open(REPO_ROOT / "training/data/mnist/train-images-idx3-ubyte.gz") as fh:
        raw = fh.read()
    count, height, width = (int.from_bytes(raw[i : i + 4], "big") for i in (4, 8, 12))
    return np.frombuffer(raw, np.uint8, offset=16).reshape(count, height, width)


def forecast_parameters(manifest: dict[str, Any]) -> dict[str, Any]:
    p = manifest["parameters"]
    qs = [float(q) for q in p["quantiles"]]
    return {
        "season_length": int(p["season_length"]),
        "interval_low_index": qs.index(0.1),
        "interval_high_index": qs.index(0.9),
        "interval": [0.1, 0.9],
    }


def sentiment_parameters(manifest: dict[str, Any]) -> dict[str, Any]:
    p = manifest["parameters"]
    return {"unk_id": int(p["unk_id"]), "max_tokens": int(p["max_tokens"]), "labels": list(p["labels"])}


def generate_observed(version_dir: Path, manifest: dict[str, Any], prompts: int = 5_000) -> list[Observed]:
    """Prompts as the training text offers them: the first 1-4 lines of random speeches of its 90% split."""
    training = manifest.get("training", {}).get("data") or [
        {"path": "training/data/tinyshakespeare/input.txt"}
    ]
    text = (REPO_ROOT / training[0]["path"]).read_text(encoding="utf-8")
    speeches = [s for s in text[: int(len(text) * 0.9)].split("\n\n") if s.strip()]
    vocab = set(
        json.loads((version_dir / manifest["parameters"]["vocab"]).read_text(encoding="utf-8"))["chars"]
    )
    rng = np.random.default_rng(0)
    rows = []
    for index in rng.integers(0, len(speeches), size=prompts):
        lines = speeches[index].split("\n")
        prompt = "\n".join(lines[: int(rng.integers(1, 5))]) + "\n"
        rows.append((len(prompt), float(any(ch not in vocab for ch in prompt))))
    return [(np.asarray(rows, dtype=np.float64), None)]


def classify_parameters(manifest: dict[str, Any]) -> dict[str, Any]:
    return {"labels": list(manifest["parameters"]["labels"])}


def _edges(name: str, values: np.ndarray, manifest: dict[str, Any]) -> list[float]:
    p = manifest["parameters"]
    if name in ("zeros", "unk_share", "non_ascii_share"):
        return SHARE_EDGES
    if name == "level":
        return LEVEL_EDGES
    if name == "length":
        low, high = int(p["min_context_length"]), int(p["context_length"])
        return [float(low), float((low + high) // 2), float(high)]
    if name == "prompt_chars":
        # Powers of 4 (4 ... 4096 characters): with powers of 2, held-out speeches of the validation plays
        # scored 0.06-0.10 against the training plays; these bins 0.02-0.03.
        return [float(4**k) for k in range(1, 7)]
    if name == "oov_rejected":
        return [0.5]
    if name == "label":
        return [i + 0.5 for i in range(len(p["labels"]) - 1)]
    return _decile_edges(values, MIN_BIN_WIDTH.get(name, 0.0))


def build_profile(
    manifest: dict[str, Any], extractor: Extractor, observed: Sequence[Observed], params: dict[str, Any]
) -> dict[str, Any]:
    columns = extractor.extract(observed)
    features = []
    for name in extractor.names:
        values = columns[name]
        edges = _edges(name, values, manifest)
        counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)
        features.append({
            "name": name,
            "side": "output" if name in OUTPUTS else "input",
            "description": DESCRIPTIONS[name],
            "edges": edges,
            "counts": [int(c) for c in counts],
        })  # fmt: skip
    profile = {
        "profile_version": PROFILE_VERSION,
        "task": manifest["task"],
        "model": {"name": manifest["name"], "version": manifest["version"]},
        "parameters": params,
        "rows": len(next(iter(columns.values()))),
        "features": features,
    }
    Profile.model_validate_json(json.dumps(profile))  # the service must accept what we write
    return profile


def _task_parts(
    version_dir: Path, manifest: dict[str, Any]
) -> tuple[Extractor, list[Observed], dict[str, Any]]:
    if manifest["task"] == "forecast":
        params = forecast_parameters(manifest)
        return ForecastExtractor.from_parameters(params), forecast_observed(version_dir, manifest), params
    if manifest["task"] == "sentiment":
        params = sentiment_parameters(manifest)
        return SentimentExtractor.from_parameters(params), sentiment_observed(version_dir, manifest), params
    if manifest["task"] == "generate":
        return GenerateExtractor(), generate_observed(version_dir, manifest), {}
    if manifest["task"] == "classify":
        params = classify_parameters(manifest)
        return ClassifyExtractor(), classify_observed(version_dir, manifest), params
    raise ValueError(f"no drift profile is defined for task {manifest['task']!r}")


def profile_version(version_dir: Path) -> dict[str, Any]:
    """Write ``profile.json`` and register it in ``model.json`` (re-read just before writing)."""
    manifest = json.loads((version_dir / "model.json").read_text())
    extractor, observed, params = _task_parts(version_dir, manifest)
    profile = build_profile(manifest, extractor, observed, params)
    path = version_dir / PROFILE_FILENAME
    path.write_text(json.dumps(profile, indent=2) + "\n")
    entry = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
    # Others may have added keys since we read it: re-read, add only our two entries, write.
    current = json.loads((version_dir / "model.json").read_text())
    current["drift"] = {"profile": PROFILE_FILENAME}
    current["files"][PROFILE_FILENAME] = entry
    (version_dir / "model.json").write_text(json.dumps(current, indent=2) + "\n")
    log.info("wrote %s (%d reference rows)", path, profile["rows"])
    return profile
