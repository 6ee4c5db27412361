"""The M4 organisers' simple benchmarks (Naive, seasonal Naive, Naive2) in plain numpy.

A learned forecaster is only worth serving if it beats these, and M4's OWA is defined relative
to Naive2, so they must behave exactly like the organisers' ``Benchmarks and Evaluation.R``
(R ``forecast::naive``, ``SeasonalityTest`` and ``stats::decompose``): otherwise our OWA would
not be comparable with the published leaderboard.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from training.m4_metrics import owa, score_forecasts

FloatArray = npt.NDArray[np.float64]

# One-sided 90% normal quantile used by the organisers' SeasonalityTest.
_TCRIT = 1.645


def _history(insample: npt.ArrayLike) -> FloatArray:
    """Validate once so every baseline fails loudly on empty or multi-dimensional input."""
    x = np.asarray(insample, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"insample must be a non-empty 1-D series, got shape {x.shape}")
    return x


def naive(insample: npt.ArrayLike, h: int) -> FloatArray:
    """Last observation carried forward: the random-walk forecast, optimal for pure noise levels."""
    x = _history(insample)
    return np.full(h, x[-1], dtype=np.float64)


def seasonal_naive(insample: npt.ArrayLike, h: int, m: int) -> FloatArray:
    """Repeat the last full season; with ``m == 1`` this is plain naive, as in the R benchmark."""
    x = _history(insample)
    if m <= 1:
        return naive(x, h)
    if x.size < m:
        raise ValueError(f"seasonal naive needs at least one season (m={m}), got {x.size} points")
    return np.resize(x[-m:], h).astype(np.float64)


def acf(x: npt.ArrayLike, max_lag: int) -> FloatArray:
    """Biased sample autocorrelations at lags 1..max_lag, as R's ``acf`` computes them.

    Dividing every lag by the same full-length sum of squares (not by n-k) is what R does; the
    unbiased variant would change which series pass the seasonality test.
    """
    y = _history(x)
    d = y - y.mean()
    denom = float(np.dot(d, d))
    if denom == 0.0:
        return np.full(max_lag, np.nan)
    return np.array([np.dot(d[k:], d[: d.size - k]) / denom for k in range(1, max_lag + 1)])


def seasonality_test(insample: npt.ArrayLike, m: int) -> bool:
    """M4's 90% ACF test at the seasonal lag, with Bartlett's standard error.

    R's ``acf`` only returns lags up to ``floor(10*log10(n))``; when ``m`` is beyond that the
    organisers' code reads NA and declares the series non-seasonal. That quirk is reproduced so
    e.g. weekly data (m=52) stays non-seasonal exactly as in the official benchmark.
    """
    x = _history(insample)
    n = x.size
    if m <= 1 or n < 3 * m:
        return False
    if m > min(math.floor(10 * math.log10(n)), n - 1):
        return False
    r = acf(x, m)
    if np.isnan(r).any():
        return False
    limit = _TCRIT / math.sqrt(n) * math.sqrt(1.0 + 2.0 * float(np.sum(r[: m - 1] ** 2)))
    return bool(abs(r[m - 1]) > limit)


def multiplicative_seasonal_indices(insample: npt.ArrayLike, m: int) -> FloatArray:
    """Seasonal indices of R's ``decompose(type="multiplicative")``, one per position of the cycle.

    Index ``i`` belongs to observations ``i, i+m, ...`` counted from the series start (R's ``ts``
    default start). The trend is a centred moving average (2xm for even m) so the ratio isolates
    the seasonal effect; the indices are rescaled to average 1 so deseasonalising keeps the level.
    """
    x = _history(insample)
    if m < 2 or x.size < 2 * m:
        raise ValueError(f"decomposition needs m >= 2 and two full seasons, got m={m}, n={x.size}")
    weights = np.full(m + 1, 1.0 / m) if m % 2 == 0 else np.full(m, 1.0 / m)
    if m % 2 == 0:
        weights[0] = weights[-1] = 0.5 / m
    half = weights.size // 2
    trend = np.full(x.size, np.nan)
    trend[half : x.size - half] = np.convolve(x, weights, mode="valid")
    ratio = x / trend
    figure = np.array([np.nanmean(ratio[i::m]) for i in range(m)])
    return np.asarray(figure / figure.mean(), dtype=np.float64)


def naive2(insample: npt.ArrayLike, h: int, m: int) -> FloatArray:
    """Naive on the seasonally adjusted series, re-seasonalised: M4's reference benchmark.

    Seasonal adjustment is applied only when the ACF test finds seasonality, so non-seasonal
    series get plain naive and noise is not mistaken for a pattern.
    """
    x = _history(insample)
    if not seasonality_test(x, m):
        return naive(x, h)
    figure = multiplicative_seasonal_indices(x, m)
    n = x.size
    level = float(x[-1] / figure[(n - 1) % m])
    return np.asarray(level * figure[(n + np.arange(h)) % m], dtype=np.float64)


def evaluate_baselines(
    train: Sequence[npt.ArrayLike],
    test: npt.ArrayLike,
    h: int,
    m: int,
) -> dict[str, dict[str, float]]:
    """Score naive, snaive and naive2 on a dataset, with OWA relative to our own Naive2.

    Returning the Naive2 aggregates alongside lets a model evaluation table compute its own OWA
    with :func:`training.m4_metrics.owa` against the very same reference.
    """
    y = np.asarray(test, dtype=np.float64)
    if y.ndim != 2 or y.shape[1] != h or y.shape[0] != len(train):
        raise ValueError(f"test must be [{len(train)}, {h}], got {y.shape}")
    forecasts = {
        "naive": np.stack([naive(s, h) for s in train]),
        "snaive": np.stack([seasonal_naive(s, h, m) for s in train]),
        "naive2": np.stack([naive2(s, h, m) for s in train]),
    }
    scores = {name: score_forecasts(train, y, f, m) for name, f in forecasts.items()}
    ref = scores["naive2"]
    for s in scores.values():
        s["owa"] = owa(s["smape"], s["mase"], ref["smape"], ref["mase"])
    return scores
