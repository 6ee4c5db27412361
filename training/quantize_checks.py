"""Checks on an int8 graph against its fp32 source, split from ``training.quantize``.

``quantize.py`` decides *how* to quantize and writes the version folder; this module holds what is
measured on the result, so the rules a quantized model is held to (output distance, parity, batch
invariance, the per-task quality gates) read in one place and can be imported without the quantizer:

- ``relative_l1``: the distance used to rank candidates;
- ``parity_vs_reference`` and ``batch_invariance``: recorded in the manifest;
- ``forecast_gate`` / ``sentiment_gate``: the issue-4 gates (forecaster OWA <= 1.01 x fp32 OWA;
  sentiment test_labeled accuracy >= fp32 - 0.3 points);
- ``ForecastTask`` / ``SentimentTask`` (``task_adapter``): the real inputs and the evaluation re-run,
  with the same code that scored the source version.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np
import onnxruntime as ort

from training.export import ort_session
from training.forecast_eval import evaluate_forecaster
from training.forecast_pipeline import load_dataset
from training.manifest import sha256_file

REPO_ROOT = Path(__file__).resolve().parent.parent

FORECAST_OWA_FACTOR = 1.01
SENTIMENT_ACCURACY_POINTS = 0.3
FIDELITY_BATCH = 64
# A row's answer alone vs inside a batch; the micro-batcher's own tests hold fp32 models to 1e-5.
BATCH_INVARIANCE_RTOL = 1e-5
Feeds = dict[str, np.ndarray]


def _run(sess: ort.InferenceSession, feeds: Feeds) -> np.ndarray:
    return np.asarray(sess.run(None, feeds)[0], dtype=np.float64)


def relative_l1(ref_path: Path, got_path: Path, feeds: list[Feeds]) -> float:
    """sum |got - ref| / sum |ref| over every output of every batch: 0 means identical outputs."""
    ref_sess, got_sess = ort_session(ref_path), ort_session(got_path)
    num, den = 0.0, 0.0
    for f in feeds:
        ref = _run(ref_sess, f)
        num += float(np.abs(_run(got_sess, f) - ref).sum())
        den += float(np.abs(ref).sum())
    return num / max(den, 1e-30)


def _diff(ref: np.ndarray, got: np.ndarray) -> dict[str, float]:
    """Same definition as training.export.parity: relative to max(|ref|, 1e-6 * max|ref|)."""
    diff = np.abs(ref - got)
    floor = max(1e-6 * float(np.abs(ref).max()), 1e-12)
    return {
        "max_abs_diff": float(diff.max()),
        "max_rel_diff": float((diff / np.maximum(np.abs(ref), floor)).max()),
        "mean_rel_l1": float(diff.sum() / max(float(np.abs(ref).sum()), 1e-30)),
    }


def parity_vs_reference(
    ref_path: Path, got_path: Path, cases: list[tuple[str, Feeds]], reference: str
) -> dict[str, object]:
    ref_sess, got_sess = ort_session(ref_path), ort_session(got_path)
    per_case = {name: _diff(_run(ref_sess, f), _run(got_sess, f)) for name, f in cases}
    return {
        "reference": reference,
        "max_abs_diff": max(c["max_abs_diff"] for c in per_case.values()),
        "max_rel_diff": max(c["max_rel_diff"] for c in per_case.values()),
        "cases": per_case,
    }


def _split_rows(feeds: Feeds) -> list[Feeds]:
    batch = len(next(iter(feeds.values())))
    return [{k: v[i : i + 1] for k, v in feeds.items()} for i in range(batch)]


def batch_invariance(path: Path, feeds: Feeds, trim: bool = False) -> dict[str, float]:
    """Each row alone vs the same row inside ``feeds`` (one batch): how much the neighbours matter.

    ``trim`` cuts a lone row's right padding to its ``lengths`` (sentiment), as a solo request would.
    """
    sess = ort_session(path)
    together = _run(sess, feeds)
    rows = _split_rows(feeds)
    if trim:
        rows = [
            {"input_ids": r["input_ids"][:, : int(r["lengths"][0])], "lengths": r["lengths"]} for r in rows
        ]
    alone = np.concatenate([_run(sess, r) for r in rows])
    return {k: v for k, v in _diff(alone, together).items() if k != "mean_rel_l1"}


class TaskAdapter(Protocol):
    def fidelity_feeds(self) -> list[Feeds]: ...

    def parity_cases(self) -> list[tuple[str, Feeds]]: ...

    def invariance_feeds(self) -> tuple[Feeds, bool]: ...

    def evaluate(self, version_dir: Path) -> dict[str, object]: ...

    def gate(self, fp32: dict[str, Any], int8: dict[str, Any]) -> dict[str, object]: ...


def forecast_gate(fp32_owa: float, int8_owa: float) -> dict[str, object]:
    threshold = round(FORECAST_OWA_FACTOR * fp32_owa, 6)
    return {
        "metric": "owa",
        "split": "test",
        "rule": f"int8 OWA <= {FORECAST_OWA_FACTOR} x fp32 OWA",
        "fp32": fp32_owa,
        "int8": int8_owa,
        "threshold": threshold,
        "passed": bool(int8_owa <= threshold),
    }


def sentiment_gate(fp32_accuracy: float, int8_accuracy: float) -> dict[str, object]:
    threshold = round(fp32_accuracy - SENTIMENT_ACCURACY_POINTS, 2)
    return {
        "metric": "accuracy",
        "split": "test_labeled",
        "rule": f"int8 accuracy >= fp32 accuracy - {SENTIMENT_ACCURACY_POINTS} points",
        "fp32": fp32_accuracy,
        "int8": int8_accuracy,
        "threshold": threshold,
        "passed": bool(int8_accuracy >= threshold),
    }


class ForecastTask:
    def __init__(self, manifest: dict[str, Any]) -> None:
        self.params: dict[str, Any] = manifest["parameters"]
        train_csv, test_csv, fmt = forecast_data_files(manifest)
        _, self.train, self.test = load_dataset(train_csv, test_csv, fmt, self.params["horizon"])

    def _contexts(self, length: int) -> np.ndarray:
        return np.stack([s[-length:] for s in self.train]).astype(np.float32)

    def fidelity_feeds(self) -> list[Feeds]:
        feeds = []
        for length in (self.params["min_context_length"], self.params["context_length"]):
            rows = self._contexts(length)
            feeds += [{"values": rows[s : s + FIDELITY_BATCH]} for s in range(0, len(rows), FIDELITY_BATCH)]
        return feeds

    def parity_cases(self) -> list[tuple[str, Feeds]]:
        """As the fp32 export's parity: real series at batch 1, 7, 64, minimum and maximum length."""
        cases = []
        for batch in (1, 7, 64):
            for length in (self.params["min_context_length"], self.params["context_length"]):
                cases.append((f"batch{batch}_len{length}", {"values": self._contexts(length)[:batch]}))
        return cases

    def invariance_feeds(self) -> tuple[Feeds, bool]:
        return {"values": self._contexts(self.params["context_length"])[:FIDELITY_BATCH]}, False

    def evaluate(self, version_dir: Path) -> dict[str, object]:
        p = self.params
        return evaluate_forecaster(
            version_dir / "model.onnx",
            self.train,
            self.test,
            list(p["quantiles"]),
            p["context_length"],
            p["season_length"],
        )

    def gate(self, fp32: dict[str, Any], int8: dict[str, Any]) -> dict[str, object]:
        return forecast_gate(float(fp32["model"]["owa"]), float(int8["model"]["owa"]))


def forecast_data_files(manifest: dict[str, Any]) -> tuple[Path, Path | None, str]:
    """The train (and test) files the manifest records, checked against their recorded sha256."""
    training = manifest["training"]
    paths = []
    for entry in training["data"]:
        if isinstance(entry, dict):
            path = REPO_ROOT / entry["path"]
            if sha256_file(path) != entry["sha256"]:
                raise ValueError(f"{path} differs from the data {manifest['name']} was scored on")
        else:
            path = Path(entry)
        paths.append(path)
    return paths[0], (paths[1] if len(paths) > 1 else None), str(training.get("data_format", "m4"))


class SentimentTask:
    def __init__(self, manifest: dict[str, Any], src_dir: Path) -> None:
        from tokenizers import Tokenizer

        from training import sentiment_pipeline as sp
        from training.sentiment_train import read_tsv
        from training.text import encode_padded

        self.max_tokens: int = manifest["parameters"]["max_tokens"]
        tok = Tokenizer.from_file(str(src_dir / manifest["parameters"]["tokenizer"]))
        dev_texts, _ = read_tsv(sp.SST_DEV)
        test_texts, _ = read_tsv(sp.SST_TEST)
        self._fidelity: list[Feeds] = []
        for s in range(0, len(dev_texts), FIDELITY_BATCH):
            ids, lengths = encode_padded(tok, dev_texts[s : s + FIDELITY_BATCH], self.max_tokens)
            self._fidelity.append({"input_ids": ids, "lengths": lengths})
        self._parity = sp.parity_cases(sp.encode_rows(tok, test_texts, self.max_tokens), self.max_tokens)
        ids, lengths = encode_padded(tok, test_texts[:FIDELITY_BATCH], self.max_tokens)
        self._invariance: Feeds = {"input_ids": ids, "lengths": lengths}

    def fidelity_feeds(self) -> list[Feeds]:
        return self._fidelity

    def parity_cases(self) -> list[tuple[str, Feeds]]:
        return self._parity

    def invariance_feeds(self) -> tuple[Feeds, bool]:
        return self._invariance, True

    def evaluate(self, version_dir: Path) -> dict[str, object]:
        from training.sentiment_pipeline import evaluate_onnx

        return evaluate_onnx(version_dir, self.max_tokens)

    def gate(self, fp32: dict[str, Any], int8: dict[str, Any]) -> dict[str, object]:
        fp32_acc, int8_acc = fp32["test_labeled"]["accuracy"], int8["test_labeled"]["accuracy"]
        return sentiment_gate(float(fp32_acc), float(int8_acc))


def task_adapter(manifest: dict[str, Any], src_dir: Path) -> TaskAdapter:
    if manifest["task"] == "forecast":
        return ForecastTask(manifest)
    if manifest["task"] == "sentiment":
        return SentimentTask(manifest, src_dir)
    raise ValueError(f"no quality gate defined for task {manifest['task']!r}")
