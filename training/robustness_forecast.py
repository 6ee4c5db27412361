"""Out-of-domain forecasting check: committed forecasters on hourly series that are not M4.

Windows are cut from ``training/data/ood/hourly.csv`` (temperatures and electricity demand, see its
README) at origins every ``step`` hours. Every model and every baseline is scored on the same windows
against the same in-sample history, so the MASE scale and the seasonal-naive reference are shared and
OWA compares like with like.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from training.baselines import naive2, seasonal_naive
from training.forecast_pipeline import REPO_ROOT
from training.m4_metrics import owa, score_forecasts, smape
from training.series_io import load_long_csv

OOD_HOURLY = REPO_ROOT / "training/data/ood/hourly.csv"
HORIZON = 48  # M4 Hourly's horizon
SEASON = 24
STEP = 48  # origins two days apart: the horizons of one series never overlap


@dataclass(frozen=True)
class Windows:
    """Forecast problems cut from the OOD series: in-sample history [N, H] and what followed [N, h]."""

    series_ids: list[str]
    origins: list[int]
    history: np.ndarray
    actual: np.ndarray


def repo_relative(path: Path) -> str:
    """Paths in the report are repository-relative so it reads the same on every checkout."""
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


def resolve_version(model_dir: Path, which: str) -> Path:
    """``latest`` = highest version folder; ``default`` = the one an unpinned request gets.

    The default rule is the service's (service/runtime/versions.py): the highest version whose
    manifest does not say ``"default": false``. Repeated here because training never imports service.
    """
    versions = sorted((int(p.name), p) for p in model_dir.iterdir() if p.name.isdigit())
    if not versions:
        raise FileNotFoundError(f"no version folders in {model_dir}")
    if which == "latest":
        return versions[-1][1]
    if which == "default":
        for _, path in reversed(versions):
            if json.loads((path / "model.json").read_text()).get("default") is not False:
                return path
        raise ValueError(f"{model_dir}: every version opts out of being the default")
    return model_dir / which  # an explicit version number


def cut_windows(
    csv_path: Path, history: int, horizon: int = HORIZON, step: int = STEP, max_per_series: int | None = None
) -> Windows:
    """Origins from ``history`` on, every ``step`` points, while a whole horizon follows."""
    ids: list[str] = []
    origins: list[int] = []
    hist: list[np.ndarray] = []
    actual: list[np.ndarray] = []
    for sid, values in load_long_csv(csv_path).items():
        starts = list(range(history, len(values) - horizon + 1, step))[:max_per_series]
        for t in starts:
            ids.append(sid)
            origins.append(t)
            hist.append(values[t - history : t])
            actual.append(values[t : t + horizon])
    if not ids:
        raise ValueError(f"{csv_path}: no series is long enough for {history} + {horizon} points")
    return Windows(ids, origins, np.stack(hist), np.stack(actual))


def onnx_quantiles(model_path: Path, contexts: np.ndarray, threads: int, batch: int = 64) -> np.ndarray:
    """[N, horizon, quantiles] from the committed graph, on ``threads`` intra-op threads."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(model_path), opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    chunks = [
        sess.run(None, {name: contexts[s : s + batch].astype(np.float32)})[0]
        for s in range(0, len(contexts), batch)
    ]
    return np.concatenate(chunks).astype(np.float64)


def _scores(
    history: np.ndarray, actual: np.ndarray, point: np.ndarray, ref: dict[str, float]
) -> dict[str, float]:
    s = score_forecasts(list(history), actual, point, SEASON)
    s["owa_vs_snaive"] = owa(s["smape"], s["mase"], ref["smape"], ref["mase"])
    return s


def _by_series(w: Windows, forecasts: dict[str, np.ndarray]) -> dict[str, dict[str, dict[str, float]]]:
    """The same scores per source series: a pooled win could hide a loss on one kind of data."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    ids = np.asarray(w.series_ids)
    for sid in dict.fromkeys(w.series_ids):
        rows = ids == sid
        ref = score_forecasts(list(w.history[rows]), w.actual[rows], forecasts["snaive"][rows], SEASON)
        out[sid] = {
            label: {k: round(v, 4) for k, v in _scores(w.history[rows], w.actual[rows], f[rows], ref).items()}
            for label, f in forecasts.items()
        }
    return out


def evaluate(
    models: dict[str, Path], csv_path: Path = OOD_HOURLY, threads: int = 1, max_per_series: int | None = None
) -> dict[str, Any]:
    """Score each labelled version folder and the baselines on the same OOD windows."""
    manifests = {label: json.loads((d / "model.json").read_text()) for label, d in models.items()}
    for label, m in manifests.items():
        if m["parameters"]["horizon"] < HORIZON:
            raise ValueError(f"{label}: horizon {m['parameters']['horizon']} < {HORIZON}")
    # One in-sample span for everybody: the longest context any compared model reads.
    history = max(int(m["parameters"]["context_length"]) for m in manifests.values())
    w = cut_windows(csv_path, history, max_per_series=max_per_series)
    forecasts: dict[str, np.ndarray] = {
        "snaive": np.stack([seasonal_naive(h, HORIZON, SEASON) for h in w.history]),
        "naive2": np.stack([naive2(h, HORIZON, SEASON) for h in w.history]),
    }
    coverage: dict[str, float] = {}
    for label, m in manifests.items():
        p = m["parameters"]
        q = [float(x) for x in p["quantiles"]]
        contexts = w.history[:, -int(p["context_length"]) :]
        pred = onnx_quantiles(models[label] / "model.onnx", contexts, threads)[:, :HORIZON]
        forecasts[label] = pred[:, :, q.index(0.5)]
        inside = (w.actual >= pred[:, :, q.index(0.1)]) & (w.actual <= pred[:, :, q.index(0.9)])
        coverage[label] = round(float(inside.mean()), 4)
    ref = score_forecasts(list(w.history), w.actual, forecasts["snaive"], SEASON)
    n2 = score_forecasts(list(w.history), w.actual, forecasts["naive2"], SEASON)
    pooled = {}
    for label, f in forecasts.items():
        s = _scores(w.history, w.actual, f, ref)
        s["owa_vs_naive2"] = owa(s["smape"], s["mase"], n2["smape"], n2["mase"])
        pooled[label] = {k: round(v, 4) for k, v in s.items()}
    return {
        "data": repo_relative(csv_path),
        "windows": len(w.series_ids),
        "windows_per_series": {sid: w.series_ids.count(sid) for sid in dict.fromkeys(w.series_ids)},
        "history": history,
        "horizon": HORIZON,
        "step": STEP,
        "season": SEASON,
        "models": {label: repo_relative(d) for label, d in models.items()},
        "pooled": pooled,
        "coverage_0.1_0.9": coverage,
        "by_series": _by_series(w, forecasts),
        "window_smape": {
            label: [round(smape(a, f), 4) for a, f in zip(w.actual, forecasts[label], strict=True)]
            for label in models
        },
    }
