"""Per-row drift features, computed on whole arrays (one numpy pass per feature, no per-row Python).

Training imports these functions to build the reference (``training/profiles.py``), and the service
uses them on live traffic, so a feature means exactly the same thing on both sides.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

FloatArray = np.ndarray[Any, np.dtype[np.float64]]

# Below this, |x| is treated as zero: log10 of a mean of zeros would be -inf.
_TINY = 1e-6


def _mean_abs(x: FloatArray) -> FloatArray:
    return np.asarray(np.abs(x).mean(axis=1), dtype=np.float64)


def seasonality_strength(x: FloatArray, season: int) -> FloatArray:
    """Share of the day-detrended variance explained by a repeating ``season``-step profile, in [0, 1].

    Each whole season ("day") is centred on its own mean, which removes level and slow trend; the
    seasonal profile is the mean over days, and strength = 1 - Var(remainder) / Var(centred). Needs at
    least two whole seasons (0 otherwise). Pure noise scores about 1/days (0.07 over 14 days).
    """
    rows, length = x.shape
    days = length // season
    if days < 2:
        return np.zeros(rows)
    centred = x[:, length - days * season :].reshape(rows, days, season)
    centred = centred - centred.mean(axis=2, keepdims=True)
    remainder = centred - centred.mean(axis=1, keepdims=True)
    total = np.square(centred).mean(axis=(1, 2))
    left = np.square(remainder).mean(axis=(1, 2))
    safe = np.where(total > 0, total, 1.0)
    return np.where(total > 0, np.clip(1.0 - left / safe, 0.0, 1.0), 0.0)


def forecast_inputs(rows: np.ndarray[Any, Any], season: int) -> dict[str, FloatArray]:
    """Features of a [B, T] batch of contexts as the model receives them (the last <= context values).

    ``length`` is T: values sent, capped at the context length (values beyond it are never used).
    """
    x = np.asarray(rows, dtype=np.float64)
    level = _mean_abs(x)
    safe = np.where(level > _TINY, level, 1.0)
    return {
        "level": np.log10(np.maximum(level, _TINY)),
        "cv": np.where(level > _TINY, x.std(axis=1) / safe, 0.0),
        "seasonality": seasonality_strength(x, season),
        "zeros": (x == 0.0).mean(axis=1),
        "length": np.full(x.shape[0], float(x.shape[1])),
    }


def forecast_outputs(
    rows: np.ndarray[Any, Any], quantiles: np.ndarray[Any, Any], low: int, high: int
) -> dict[str, FloatArray]:
    """Relative width of the [low, high] quantile interval: mean over the horizon / the context's mean |x|.

    ``quantiles`` is the graph's [B, horizon, Q] output; ``low`` and ``high`` index Q (0.1 and 0.9).
    """
    level = _mean_abs(np.asarray(rows, dtype=np.float64))
    q = np.asarray(quantiles, dtype=np.float64)
    width = (q[:, :, high] - q[:, :, low]).mean(axis=1)
    safe = np.where(level > _TINY, level, 1.0)
    return {"interval_width": np.where(level > _TINY, width / safe, 0.0)}


def non_ascii_share(texts: Sequence[str]) -> FloatArray:
    """Per text, the share of characters above U+007F (one pass over all texts joined, no per-text loop)."""
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    codes = np.frombuffer("".join(texts).encode("utf-32-le"), dtype="<u4")
    running = np.concatenate(([0], np.cumsum(codes > 0x7F)))
    ends = np.cumsum(lengths)
    counts = running[ends] - running[ends - lengths]
    return np.where(lengths > 0, counts / np.maximum(lengths, 1), 0.0)


def predicted_label(probabilities: np.ndarray[Any, Any]) -> dict[str, FloatArray]:
    """The predicted label's index (a categorical feature: one bin per label)."""
    return {"label": np.asarray(probabilities).argmax(axis=1).astype(np.float64)}
