"""The forecast handler on the real model, without HTTP."""

from typing import Any

import numpy as np
import pytest
from svc_helpers import MODEL_NAME, MODELS, make_settings

from service.exceptions import InvalidInputError
from service.runtime.providers import CPU
from service.runtime.registry import ModelRegistry
from service.tasks.forecast import ForecastHandler, ForecastQuery, SeriesInput, quantile_key

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def handler() -> ForecastHandler:
    registry = ModelRegistry(make_settings(MODELS, max_series_per_request=5, max_series_length=1000), [CPU])
    registry.load()
    result = registry.get(MODEL_NAME).handler
    assert isinstance(result, ForecastHandler)
    return result


def _series(length: int, scale: float = 1.0, seed: int = 0) -> list[float]:
    rng = np.random.default_rng(seed)
    t = np.arange(length)
    return list(scale * (100 + 20 * np.sin(2 * np.pi * t / 24) + rng.normal(0, 2, length)))


async def _invalid(handler: ForecastHandler, query: ForecastQuery) -> list[tuple[Any, ...]]:
    with pytest.raises(InvalidInputError) as info:
        await handler.forecast(query)
    return [d.loc for d in info.value.details]


async def test_defaults_use_full_horizon_and_all_quantiles(handler: ForecastHandler, params: dict) -> None:
    [result] = await handler.forecast(ForecastQuery([SeriesInput(_series(200), id="a")]))
    assert result.id == "a"
    assert result.context_length_used == 200
    assert list(result.quantiles) == [quantile_key(q) for q in params["quantiles"]]
    assert result.point.shape == (params["horizon"],)
    np.testing.assert_array_equal(result.point, result.quantiles["0.5"])


async def test_subsets_and_truncation(handler: ForecastHandler, params: dict) -> None:
    long = _series(params["context_length"] + 100)
    query = ForecastQuery([SeriesInput(long)], horizon=5, quantiles=[0.9, 0.1])
    [result] = await handler.forecast(query)
    assert list(result.quantiles) == ["0.9", "0.1"]
    assert result.point.shape == (5,)
    assert result.context_length_used == params["context_length"]
    [tail] = await handler.forecast(
        ForecastQuery([SeriesInput(long[-params["context_length"] :])], horizon=5, quantiles=[0.9, 0.1])
    )
    np.testing.assert_array_equal(result.quantiles["0.9"], tail.quantiles["0.9"])


async def test_grouping_by_length_changes_no_answer(handler: ForecastHandler, params: dict) -> None:
    lengths = [params["min_context_length"], 250, params["context_length"], 250, 400]
    series = [SeriesInput(_series(n, seed=i), id=str(i)) for i, n in enumerate(lengths)]
    together = await handler.forecast(ForecastQuery(series))
    assert [r.id for r in together] == [str(i) for i in range(len(lengths))]
    for item, batched in zip(series, together, strict=True):
        [alone] = await handler.forecast(ForecastQuery([item]))
        for key in alone.quantiles:
            np.testing.assert_allclose(batched.quantiles[key], alone.quantiles[key], rtol=1e-5, atol=1e-4)


async def test_validation_errors_point_at_fields(handler: ForecastHandler, params: dict) -> None:
    short = params["min_context_length"] - 1
    locs = await _invalid(
        handler,
        ForecastQuery(
            [SeriesInput(_series(200)), SeriesInput(_series(short)), SeriesInput(_series(1001))],
            horizon=params["horizon"] + 1,
            quantiles=[0.5, 0.33, 0.5],
        ),
    )
    # Every problem is reported at once, not just the first.
    assert set(locs) == {
        ("horizon",),
        ("quantiles", 1),
        ("quantiles", 2),
        ("series", 1, "values"),
        ("series", 2, "values"),
    }


async def test_limits_and_non_finite(handler: ForecastHandler) -> None:
    assert await _invalid(handler, ForecastQuery([SeriesInput(_series(200))] * 6)) == [("series",)]
    assert await _invalid(handler, ForecastQuery([])) == [("series",)]
    assert await _invalid(handler, ForecastQuery([SeriesInput([*_series(199), float("nan")])])) == [
        ("series", 0, "values", 199)
    ]
    assert await _invalid(handler, ForecastQuery([SeriesInput([*_series(199), 1e39])])) == [
        ("series", 0, "values", 199)
    ]
    assert await _invalid(handler, ForecastQuery([SeriesInput(_series(200))], horizon=0)) == [("horizon",)]


async def test_huge_but_representable_values_are_422_not_500(handler: ForecastHandler) -> None:
    values = [3e38] * 200
    try:
        [result] = await handler.forecast(ForecastQuery([SeriesInput(values)]))
    except InvalidInputError as exc:
        assert exc.details[0].loc == ("series", 0, "values")
    else:
        assert np.isfinite(result.point).all()


async def test_values_before_the_context_are_checked_but_not_sent(handler: ForecastHandler) -> None:
    # Only the last context_length values reach the model; a NaN earlier is still the client's error,
    # named where it is, while a finite value earlier that float32 cannot hold is never used.
    n = handler.params.context_length + 20
    with_nan = [*_series(n)]
    with_nan[3] = float("nan")
    assert await _invalid(handler, ForecastQuery([SeriesInput(with_nan)])) == [("series", 0, "values", 3)]
    huge_early = [*_series(n)]
    huge_early[3] = 1e39
    [result] = await handler.forecast(ForecastQuery([SeriesInput(huge_early)]))
    [reference] = await handler.forecast(
        ForecastQuery([SeriesInput(_series(n)[-handler.params.context_length :])])
    )
    assert result.context_length_used == handler.params.context_length
    np.testing.assert_array_equal(result.point, reference.point)
