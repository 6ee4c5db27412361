"""Turn a set of series into training windows and validation/test contexts for the forecaster."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class WindowSpec:
    context_length: int
    min_context_length: int
    horizon: int


def split_holdout(series: list[np.ndarray], horizon: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Hold out the last ``horizon`` points of each series for early stopping.

    The official test set is kept for the final report only, so model selection never sees it.
    """
    fit = [s[:-horizon] for s in series]
    holdout = np.stack([s[-horizon:] for s in series])
    return fit, holdout


def last_contexts(series: list[np.ndarray], length: int) -> list[np.ndarray]:
    """The most recent ``length`` points of each series (all of it when shorter)."""
    return [s[-length:] for s in series]


def sample_windows(
    series: list[np.ndarray],
    spec: WindowSpec,
    per_series: int,
    rng: np.random.Generator,
    recent_fraction: float = 0.0,
    recent_span: int = 168,
) -> tuple[np.ndarray, np.ndarray]:
    """Sample ``per_series`` (context, target) pairs from every series, uniformly over time.

    With ``recent_fraction`` > 0 that share of the windows instead ends within the last
    ``recent_span`` possible positions: the recent regime is what the next 48 hours continue
    (ES-RNN and N-BEATS both weighted it). At 0 the draws are exactly the uniform ones.

    Every series gets the same number of windows, so long series do not dominate the loss.
    Contexts are cut at full ``context_length``; the loop crops them to shorter lengths so
    the model learns to forecast from anything between the minimum and maximum context.
    """
    total = spec.context_length + spec.horizon
    contexts, targets = [], []
    for s in series:
        if len(s) < total:
            continue  # too short to give a full window; counted by the caller
        last = len(s) - spec.horizon + 1
        ends = rng.integers(spec.context_length, last, size=per_series)
        if recent_fraction > 0:
            recent = rng.random(per_series) < recent_fraction
            low = max(spec.context_length, last - recent_span)
            ends = np.where(recent, rng.integers(low, last, size=per_series), ends)
        for e in ends:
            contexts.append(s[e - spec.context_length : e])
            targets.append(s[e : e + spec.horizon])
    return np.asarray(contexts, dtype=np.float32), np.asarray(targets, dtype=np.float32)
