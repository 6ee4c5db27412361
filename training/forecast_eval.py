"""Scores an exported forecaster on a test set, beside baselines and published anchors.

Evaluation runs the ONNX artifact through ONNX Runtime, the same graph the service serves,
so the numbers in the manifest describe what users actually get.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from training.baselines import evaluate_baselines
from training.m4_metrics import owa, score_forecasts

# Published M4 Hourly OWA (organisers' "Evaluation and Ranks.xlsx"), printed beside ours.
M4_HOURLY_ANCHORS: dict[str, float] = {
    "sNaive (M4 benchmark)": 0.627,
    "FFORMA, Montero-Manso et al.": 0.484,
    "ES-RNN, Smyl (M4 winner)": 0.440,
    "Doornik, Hendry & Castle (best Hourly)": 0.410,
}


def onnx_forecast(model_path: Path, contexts: list[np.ndarray], batch_size: int = 256) -> np.ndarray:
    """Forecast every context; rows are grouped by length because the graph takes [B, T]."""
    sess = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    input_name = sess.get_inputs()[0].name
    out: list[np.ndarray | None] = [None] * len(contexts)
    by_length: dict[int, list[int]] = {}
    for i, c in enumerate(contexts):
        by_length.setdefault(len(c), []).append(i)
    for idx in by_length.values():
        for start in range(0, len(idx), batch_size):
            chunk = idx[start : start + batch_size]
            batch = np.stack([contexts[i] for i in chunk]).astype(np.float32)
            result = sess.run(None, {input_name: batch})[0]
            for row, i in zip(result, chunk, strict=True):
                out[i] = row
    return np.stack([r for r in out if r is not None])


def evaluate_forecaster(
    model_path: Path,
    train: list[np.ndarray],
    test: np.ndarray,
    quantiles: list[float],
    context_length: int,
    season_length: int,
) -> dict[str, object]:
    horizon = test.shape[1]
    pred = onnx_forecast(model_path, [s[-context_length:] for s in train]).astype(np.float64)
    median = pred[:, :horizon, quantiles.index(0.5)]
    baselines = evaluate_baselines(train, test, horizon, season_length)
    n2 = baselines["naive2"]
    ours = score_forecasts(train, test, median, season_length)
    ours["owa"] = owa(ours["smape"], ours["mase"], n2["smape"], n2["mase"])
    lo, hi = quantiles.index(0.1), quantiles.index(0.9)
    inside = (test >= pred[:, :horizon, lo]) & (test <= pred[:, :horizon, hi])
    return {
        "test_series": int(test.shape[0]),
        "horizon": horizon,
        "model": {k: round(v, 4) for k, v in ours.items()},
        "interval_0.1_0.9_coverage": round(float(inside.mean()), 4),
        "baselines": {name: {k: round(v, 4) for k, v in s.items()} for name, s in baselines.items()},
        "published_owa": M4_HOURLY_ANCHORS,
    }


def format_table(result: dict[str, object], model_label: str) -> str:
    """A plain-text table: our model, our baselines, then published anchors."""
    model = result["model"]
    baselines = result["baselines"]
    anchors = result["published_owa"]
    assert isinstance(model, dict) and isinstance(baselines, dict) and isinstance(anchors, dict)
    lines = [f"{'method':42s} {'sMAPE':>8s} {'MASE':>8s} {'OWA':>7s}", "-" * 68]
    lines.append(f"{model_label:42s} {model['smape']:8.3f} {model['mase']:8.3f} {model['owa']:7.3f}")
    for name, s in baselines.items():
        lines.append(f"{name + ' (ours)':42s} {s['smape']:8.3f} {s['mase']:8.3f} {s['owa']:7.3f}")
    for name, value in anchors.items():
        lines.append(f"{name + ' (published)':42s} {'':8s} {'':8s} {value:7.3f}")
    lines.append(f"0.1-0.9 interval coverage (nominal 0.80): {result['interval_0.1_0.9_coverage']:.3f}")
    return "\n".join(lines)
