"""Point-forecast accuracy measures of the M4 competition (sMAPE, MASE, OWA) in plain numpy.

The definitions follow the organisers' ``Benchmarks and Evaluation.R`` (M4-methods repo) so that
numbers produced here can be put next to the published M4 leaderboard without caveats; the
reproduction of the official Naive / sNaive / Naive2 Hourly scores in
``tests/training/test_m4_metrics.py`` is what guards that claim.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
ArrayLike = npt.ArrayLike


def _as_1d(values: ArrayLike, name: str) -> FloatArray:
    """Coerce to float64 1-D so integer inputs cannot silently truncate or broadcast."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    return arr


def _paired(actual: ArrayLike, forecast: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Reject length mismatches: numpy would broadcast a scalar-like forecast and hide the bug."""
    y = _as_1d(actual, "actual")
    f = _as_1d(forecast, "forecast")
    if y.shape != f.shape or y.size == 0:
        raise ValueError(
            f"actual and forecast must be non-empty and equal length, got {y.shape} and {f.shape}"
        )
    return y, f


def smape(actual: ArrayLike, forecast: ArrayLike) -> float:
    """Symmetric MAPE in percent (0..200) for one series, averaged over the horizon.

    M4 uses this instead of MAPE because it is bounded and scale-free, which lets series of very
    different magnitudes be averaged. A step where both actual and forecast are 0 is scored as a
    perfect 0 rather than the R code's NaN: M4 data is strictly positive so the official figures
    are unaffected, while user data with zeros would otherwise poison the whole mean.
    """
    y, f = _paired(actual, forecast)
    num = 200.0 * np.abs(y - f)
    den = np.abs(y) + np.abs(f)
    terms = np.divide(num, den, out=np.zeros_like(num), where=den != 0)
    return float(np.mean(terms))


def seasonal_naive_scale(insample: ArrayLike, m: int) -> float:
    """In-sample MAE of the seasonal naive forecast: the MASE denominator.

    Scaling by an in-sample error (not the test error) keeps MASE defined for every series and
    makes 1.0 mean "as good as seasonal naive one step ahead on history". With ``m=1`` this is the
    plain naive scale, as the organisers use for Yearly data.
    """
    x = _as_1d(insample, "insample")
    if m < 1:
        raise ValueError(f"m must be >= 1, got {m}")
    if x.size <= m:
        raise ValueError(f"insample needs more than m={m} points for the MASE scale, got {x.size}")
    return float(np.mean(np.abs(x[m:] - x[:-m])))


def mase(insample: ArrayLike, actual: ArrayLike, forecast: ArrayLike, m: int) -> float:
    """Mean absolute scaled error for one series.

    A flat in-sample history (scale 0) yields ``inf`` like the organisers' R code, on purpose: such
    a series cannot be scored by MASE and hiding that would bias the aggregate. Only the 0/0 case
    (flat history, perfect forecast) is mapped to 0 instead of R's NaN.
    """
    y, f = _paired(actual, forecast)
    scale = seasonal_naive_scale(insample, m)
    mae = float(np.mean(np.abs(y - f)))
    if scale == 0.0:
        return 0.0 if mae == 0.0 else float("inf")
    return mae / scale


def score_forecasts(
    insample: Sequence[ArrayLike],
    actual: ArrayLike,
    forecast: ArrayLike,
    m: int,
) -> dict[str, float]:
    """Mean sMAPE and MASE over a set of series with a common horizon.

    M4 averages per-series scores with equal weight (every series counts the same regardless of
    its scale or length); because the horizon is fixed per frequency, this equals the R code's
    mean over the whole series-by-horizon error matrix.
    """
    y = np.asarray(actual, dtype=np.float64)
    f = np.asarray(forecast, dtype=np.float64)
    if y.ndim != 2 or y.shape != f.shape:
        raise ValueError(f"actual and forecast must both be [N, h], got {y.shape} and {f.shape}")
    if len(insample) != y.shape[0]:
        raise ValueError(f"{len(insample)} in-sample series for {y.shape[0]} forecast rows")
    if y.shape[0] == 0:
        raise ValueError("no series to score")
    smapes = [smape(y[i], f[i]) for i in range(y.shape[0])]
    mases = [mase(insample[i], y[i], f[i], m) for i in range(y.shape[0])]
    return {"smape": float(np.mean(smapes)), "mase": float(np.mean(mases))}


def owa(smape: float, mase: float, smape_naive2: float, mase_naive2: float) -> float:
    """Overall Weighted Average: M4's ranking measure, relative to the Naive2 benchmark.

    It must be computed from the aggregate (mean) scores, not averaged per series: that is how the
    organisers rank methods, and the per-series ratio would be dominated by series where Naive2 is
    nearly perfect. Naive2 itself therefore scores exactly 1.
    """
    if smape_naive2 <= 0.0 or mase_naive2 <= 0.0:
        raise ValueError("Naive2 reference scores must be positive to be used as a denominator")
    return 0.5 * (smape / smape_naive2 + mase / mase_naive2)
