import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from training.models import LSTMForecaster

QUANTILES = (0.05, 0.1, 0.5, 0.9, 0.95)


def _model(seed: int = 0) -> LSTMForecaster:
    torch.manual_seed(seed)
    model = LSTMForecaster(horizon=30, quantiles=QUANTILES, season_length=12, skip_length=24, hidden_size=8)
    # Randomise the zero-initialised output layer so the tests see a non-trivial network.
    torch.nn.init.normal_(model.decoder[-1].weight, std=0.5)
    return model.eval()


def test_untrained_model_is_exactly_seasonal_naive():
    torch.manual_seed(0)
    model = LSTMForecaster(horizon=30, quantiles=QUANTILES, season_length=12, skip_length=24, hidden_size=8)
    x = torch.rand(3, 40) * 50 + 1
    with torch.no_grad():
        median = model(x)[:, :, QUANTILES.index(0.5)]
    expected = x[:, -12:].repeat(1, 3)[:, :30]
    torch.testing.assert_close(median, expected, rtol=1e-5, atol=1e-4)


@settings(max_examples=25, deadline=None)
@given(
    st.integers(min_value=24, max_value=60),
    st.floats(min_value=1e-3, max_value=1e6),
    st.integers(min_value=0, max_value=2**16),
)
def test_quantiles_are_monotone_for_any_input(length: int, level: float, seed: int):
    rng = np.random.default_rng(seed)
    x = torch.tensor(rng.lognormal(size=(4, length)) * level, dtype=torch.float32)
    with torch.no_grad():
        q = _model()(x)
    assert torch.all(q[..., 1:] >= q[..., :-1])


@pytest.mark.parametrize("factor", [1e-3, 1000.0])
def test_forecast_scales_with_its_input(factor: float):
    x = torch.rand(5, 36, dtype=torch.float32) * 100 + 10
    model = _model()
    with torch.no_grad():
        expected = model(x) * factor
        # float32 noise is relative to the series level, not to each (possibly near-zero) output.
        atol = 1e-5 * float(expected.abs().max())
        torch.testing.assert_close(model(x * factor), expected, rtol=1e-4, atol=atol)


def test_rejects_quantiles_without_a_median():
    with pytest.raises(ValueError, match=r"0\.5"):
        LSTMForecaster(horizon=4, quantiles=(0.1, 0.9))
