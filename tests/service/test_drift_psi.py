"""PSI, binning and the small-count correction, against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from service.drift.psi import (
    ACT,
    PRIOR_ROWS,
    WATCH,
    bin_counts,
    psi,
    reference_probabilities,
    status,
    window_probabilities,
    window_psi,
)


def test_plain_psi_matches_the_formula_by_hand() -> None:
    expected = (0.2 - 0.5) * math.log(0.2 / 0.5) + (0.8 - 0.5) * math.log(0.8 / 0.5)
    assert psi(np.array([0.2, 0.8]), np.array([0.5, 0.5])) == pytest.approx(expected)
    assert expected == pytest.approx(0.415888, abs=1e-6)
    assert psi(np.array([0.5, 0.5]), np.array([0.5, 0.5])) == 0.0


def test_corrected_psi_by_hand() -> None:
    # Reference 50/50 of 100 rows: Jeffreys (50 + 1/2) / (100 + 1) = 1/2 each.
    # Window 30/70 shrunk by m = 50 pseudo-rows: (30 + 25) / 150 and (70 + 25) / 150.
    assert PRIOR_ROWS == 50.0
    p1, p2 = 55 / 150, 95 / 150
    expected = (p1 - 0.5) * math.log(p1 / 0.5) + (p2 - 0.5) * math.log(p2 / 0.5)
    assert window_psi([30, 70], [50, 50]) == pytest.approx(expected)
    assert expected == pytest.approx(0.072872, abs=1e-6)


def test_reference_smoothing_keeps_every_bin_positive() -> None:
    q = reference_probabilities([100, 0])
    assert q.tolist() == pytest.approx([100.5 / 101, 0.5 / 101])
    assert q.sum() == pytest.approx(1.0)


def test_empty_window_scores_exactly_zero() -> None:
    assert window_psi([0, 0, 0], [10, 20, 30]) == 0.0
    assert window_psi([0, 0], [100, 0]) == 0.0


def test_tiny_window_is_finite_and_shrunk() -> None:
    # One row in a bin the reference never saw: plain PSI would be about 6; the prior keeps it small.
    q1, q2 = 100.5 / 101, 0.5 / 101
    p1, p2 = (50 * q1) / 51, (1 + 50 * q2) / 51
    expected = (p1 - q1) * math.log(p1 / q1) + (p2 - q2) * math.log(p2 / q2)
    score = window_psi([0, 1], [100, 0])
    assert score == pytest.approx(expected)
    assert 0 < score < WATCH
    # The same shift in many rows is unmistakable.
    assert window_psi([0, 5000], [100, 0]) > 4


def test_one_bin_reference_never_drifts_and_never_nans() -> None:
    for window in ([0], [1], [10_000]):
        score = window_psi(window, [500])
        assert score == 0.0 and not math.isnan(score)


def test_window_probabilities_sum_to_one_and_approach_the_window() -> None:
    q = reference_probabilities([10, 10, 80])
    small = window_probabilities([1, 0, 0], q)
    large = window_probabilities([100_000, 0, 0], q)
    assert small.sum() == pytest.approx(1) and large.sum() == pytest.approx(1)
    assert small[0] < 0.2 and large[0] > 0.99


def test_bin_counts_edges_are_left_closed_and_nothing_is_lost() -> None:
    edges = [0.0, 1.0, 2.0]
    values = np.array([-5.0, 0.0, 0.5, 1.0, 1.999, 2.0, np.inf, np.nan, -np.inf])
    counts = bin_counts(values, edges)
    # (-inf, 0): -5, -inf | [0, 1): 0, 0.5 | [1, 2): 1, 1.999 | [2, inf) + nan: 2, inf, nan
    assert counts.tolist() == [2, 2, 2, 3]
    assert bin_counts(np.array([]), edges).tolist() == [0, 0, 0, 0]
    assert bin_counts(np.array([3.0, -1.0]), []).tolist() == [2]


def test_status_uses_the_one_convention() -> None:
    assert (WATCH, ACT) == (0.1, 0.25)
    assert [status(s) for s in (0.0, 0.0999, 0.1, 0.2499, 0.25, 3.0)] == [
        "ok", "ok", "watch", "watch", "act", "act",
    ]  # fmt: skip
