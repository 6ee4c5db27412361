"""Population stability index of a window against a reference, with a small-count correction.

    PSI = sum_i (p_i - q_i) * ln(p_i / q_i)

over the bins i of one feature, where q is the reference (training) distribution and p the window's.

Small-count correction (why: an empty bin makes ln(p/q) infinite, and a window of five rows is mostly
noise):

- reference: q_i = (r_i + 1/2) / (R + K/2), Jeffreys smoothing of the reference counts r (R rows, K
  bins), so no reference bin is exactly zero;
- window: p_i = (c_i + m * q_i) / (N + m), the window's counts c (N rows) shrunk toward the reference by
  m = ``PRIOR_ROWS`` pseudo-rows. An empty window scores exactly 0; a tiny one scores close to 0; a
  window of many rows scores its plain PSI (the prior's weight m / (N + m) fades). The expected score of
  in-distribution noise is about (K - 1) * N / (N + m)^2, at most (K - 1) / (4 m) = 0.045 for K = 10.

One threshold convention everywhere (docs, endpoint, alerts, dashboards): below ``WATCH`` (0.1) no
meaningful shift; ``WATCH`` to ``ACT`` (0.25) a moderate shift worth a look; ``ACT`` and above a major
shift: check the traffic and the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

WATCH = 0.1
ACT = 0.25
PRIOR_ROWS = 50.0
REFERENCE_PSEUDO_COUNT = 0.5

FloatArray = np.ndarray[Any, np.dtype[np.float64]]
Status = Literal["ok", "watch", "act"]


def bin_counts(values: np.ndarray[Any, Any], edges: Sequence[float] | FloatArray) -> np.ndarray[Any, Any]:
    """Counts per bin; bin i holds edges[i-1] <= x < edges[i] (first and last bins are open-ended).

    NaN sorts after +inf, so it lands in the last bin rather than vanishing.
    """
    edges_array = np.asarray(edges, dtype=np.float64)
    index = np.searchsorted(edges_array, np.asarray(values, dtype=np.float64), side="right")
    return np.bincount(index, minlength=edges_array.size + 1)


def reference_probabilities(counts: Sequence[int] | np.ndarray[Any, Any]) -> FloatArray:
    r = np.asarray(counts, dtype=np.float64)
    q: FloatArray = (r + REFERENCE_PSEUDO_COUNT) / (r.sum() + REFERENCE_PSEUDO_COUNT * r.size)
    return q


def window_probabilities(
    counts: Sequence[int] | np.ndarray[Any, Any], reference: FloatArray, prior_rows: float = PRIOR_ROWS
) -> FloatArray:
    c = np.asarray(counts, dtype=np.float64)
    if c.sum() == 0:
        return reference.copy()  # exactly the reference, so an empty window scores exactly 0
    p: FloatArray = (c + prior_rows * reference) / (c.sum() + prior_rows)
    return p


def psi(window: FloatArray, reference: FloatArray) -> float:
    """Plain PSI of two strictly positive distributions over the same bins."""
    return float(np.sum((window - reference) * np.log(window / reference)))


def window_psi(
    counts: Sequence[int] | np.ndarray[Any, Any],
    reference_counts: Sequence[int] | np.ndarray[Any, Any],
    prior_rows: float = PRIOR_ROWS,
) -> float:
    """The corrected PSI of window counts against reference counts (both per bin, same bins)."""
    q = reference_probabilities(reference_counts)
    return psi(window_probabilities(counts, q, prior_rows), q)


def status(score: float) -> Status:
    if score >= ACT:
        return "act"
    return "watch" if score >= WATCH else "ok"
