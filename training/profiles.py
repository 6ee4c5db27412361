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
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from service.drift.extractors import Extractor, ForecastExtractor, Observed, SentimentExtractor
from service.drift.profile import PROFILE_VERSION, Profile
from training.manifest import sha256_file
from training.sentiment_train import read_tsv
from training.series_io import load_long_csv, load_m4_wide

log = logging.getLogger(__name__)
REPO_ROOT = Path(__file__).resolve().parent.parent
PROFILE_FILENAME = "profile.json"
WINDOWS_PER_SERIES = 24
CHUNK_ROWS = 256
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
}
OUTPUTS = {"interval_width", "label"}


# Narrowest bin per decile-binned feature, in its own units. A bin narrower than how far one series'
# feature wanders over time (a level trend, a seasonal pattern sharpening) makes next month's traffic
# from the very same series look drifted; measured on held-out M4 windows (docs/drift.md).
MIN_BIN_WIDTH = {"cv": 0.1, "seasonality": 0.1, "interval_width": 0.05, "tokens": 3.0}


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


def _edges(name: str, values: np.ndarray, manifest: dict[str, Any]) -> list[float]:
    p = manifest["parameters"]
    if name in ("zeros", "unk_share", "non_ascii_share"):
        return SHARE_EDGES
    if name == "level":
        return LEVEL_EDGES
    if name == "length":
        low, high = int(p["min_context_length"]), int(p["context_length"])
        return [float(low), float((low + high) // 2), float(high)]
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
