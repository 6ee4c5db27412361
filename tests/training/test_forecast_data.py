import numpy as np

from training.forecast_data import WindowSpec, sample_windows, split_holdout


def test_windows_are_contiguous_slices_of_real_series():
    series = [np.arange(100, dtype=float) + 1000 * k for k in range(3)]
    spec = WindowSpec(context_length=20, min_context_length=10, horizon=5)
    ctx, tgt = sample_windows(series, spec, per_series=50, rng=np.random.default_rng(0))
    assert ctx.shape == (150, 20) and tgt.shape == (150, 5)
    full = np.concatenate([ctx, tgt], axis=1)
    assert np.all(np.diff(full, axis=1) == 1)  # no gaps, no overlap between context and target
    assert {int(row[0] // 1000) for row in full} == {0, 1, 2}


def test_too_short_series_give_no_windows():
    spec = WindowSpec(context_length=20, min_context_length=10, horizon=5)
    ctx, _ = sample_windows([np.ones(24)], spec, per_series=4, rng=np.random.default_rng(0))
    assert len(ctx) == 0


def test_holdout_is_the_tail_and_is_not_trained_on():
    series = [np.arange(30, dtype=float), np.arange(40, dtype=float)]
    fit, holdout = split_holdout(series, horizon=6)
    assert [len(s) for s in fit] == [24, 34]
    assert holdout.tolist() == [list(range(24, 30)), list(range(34, 40))]
