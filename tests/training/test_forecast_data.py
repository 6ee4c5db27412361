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


def test_recent_windows_end_in_the_recent_span_and_zero_keeps_the_uniform_draw():
    series = [np.arange(500, dtype=float)]
    spec = WindowSpec(context_length=20, min_context_length=10, horizon=5)
    _, tgt = sample_windows(series, spec, 400, np.random.default_rng(3), recent_fraction=1.0, recent_span=30)
    ends = tgt[:, 0]  # the first target value is the window's end index in this series
    assert ends.min() >= 500 - 5 + 1 - 30 and ends.max() <= 495
    _, mixed = sample_windows(
        series, spec, 400, np.random.default_rng(3), recent_fraction=0.5, recent_span=30
    )
    assert 0.35 < np.mean(mixed[:, 0] >= 466) < 0.7  # about half recent (plus uniform draws landing there)
    # At 0 the draws are exactly the ones v1 was trained on.
    old = sample_windows(series, spec, 50, np.random.default_rng(7))
    new = sample_windows(series, spec, 50, np.random.default_rng(7), recent_fraction=0.0)
    assert all(np.array_equal(a, b) for a, b in zip(old, new, strict=True))
