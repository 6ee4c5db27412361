"""The real ONNX models through the micro-batcher: any row's answer is the same alone or in any batch."""

import asyncio
import random
from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from svc_helpers import MODELS, make_settings, read_m4_series

from service.runtime.registry import ModelRegistry
from service.tasks.forecast import ForecastHandler, ForecastQuery, SeriesInput
from service.tasks.sentiment import SentimentHandler

CPU = ["CPUExecutionProvider"]
SERIES = [np.asarray(v, dtype=np.float64) for _, v in read_m4_series(40)]
WORDS = [
    *[
        "the",
        "film",
        "is",
        "a",
        "gorgeous",
        "dull",
        "witty",
        "boring",
        "mess",
        "of",
        "great",
        "bad",
        "acting",
        "really",
    ],
    ",",
    ".",
    "!",
    "n't",
]


@pytest.fixture(scope="module")
def handlers() -> Iterator[tuple[ForecastHandler, SentimentHandler]]:
    registry = ModelRegistry(make_settings(MODELS, max_batch_size=32, max_queue_delay_seconds=0.002), CPU)
    registry.load()
    forecast = registry.get("m4-hourly").handler
    sentiment = registry.get("sst2-bilstm").handler
    assert isinstance(forecast, ForecastHandler) and isinstance(sentiment, SentimentHandler)
    yield forecast, sentiment


def _series(index: int, length: int) -> SeriesInput:
    return SeriesInput(values=SERIES[index % len(SERIES)][-length:].tolist(), id=f"s{index}")


async def _forecast_each(handler: ForecastHandler, rows: list[SeriesInput]) -> list[np.ndarray]:
    results = await asyncio.gather(*(handler.forecast(ForecastQuery(series=[r])) for r in rows))
    return [np.stack(list(r[0].quantiles.values())) for r in results]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(st.tuples(st.integers(0, 39), st.sampled_from([168, 169, 240, 336])), min_size=2, max_size=24)
)
def test_forecast_row_alone_equals_row_in_any_batch(handlers, rows):
    forecast, _ = handlers
    inputs = [_series(i, n) for i, n in rows]
    alone = [asyncio.run(_forecast_each(forecast, [r]))[0] for r in inputs]
    together = asyncio.run(_forecast_each(forecast, inputs))
    for a, b in zip(alone, together, strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5 * float(np.abs(a).max()))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(st.sampled_from(WORDS), min_size=1, max_size=60), min_size=2, max_size=24))
def test_sentiment_text_alone_equals_text_in_any_batch(handlers, word_lists):
    _, sentiment = handlers
    texts = [" ".join(w) for w in word_lists]

    async def each() -> list[dict[str, float]]:
        results = await asyncio.gather(*(sentiment.classify([t]) for t in texts))
        return [r[0].probabilities for r in results]

    alone = [asyncio.run(sentiment.classify([t]))[0].probabilities for t in texts]
    for a, b in zip(alone, asyncio.run(each()), strict=True):
        assert b == pytest.approx(a, abs=1e-5)


def test_two_thousand_concurrent_mixed_requests_each_get_their_solo_answer(handlers):
    forecast, sentiment = handlers
    rng = random.Random(7)
    requests: list[tuple[str, object]] = []
    for i in range(2000):
        kind = rng.random()
        if kind < 0.5:
            requests.append(("forecast", [_series(rng.randrange(40), rng.choice([168, 200, 336, 600]))]))
        elif kind < 0.7:
            n = rng.randint(2, 5)
            requests.append(
                ("forecast", [_series(rng.randrange(40), rng.choice([168, 336])) for _ in range(n)])
            )
        else:
            words = [rng.choice(WORDS) for _ in range(rng.randint(1, 40))]
            requests.append(("sentiment", " ".join(words) + f" {i}"))

    async def answer(kind: str, payload: object) -> list[np.ndarray]:
        if kind == "forecast":
            assert isinstance(payload, list)
            out = await forecast.forecast(ForecastQuery(series=payload))
            return [np.stack(list(f.quantiles.values())) for f in out]
        assert isinstance(payload, str)
        result = (await sentiment.classify([payload]))[0]
        return [np.array(list(result.probabilities.values()))]

    async def all_at_once() -> list[list[np.ndarray]]:
        return await asyncio.gather(*(answer(k, p) for k, p in requests))

    async def one_by_one() -> list[list[np.ndarray]]:
        return [await answer(k, p) for k, p in requests]

    concurrent = asyncio.run(all_at_once())
    solo = asyncio.run(one_by_one())
    for got, want in zip(concurrent, solo, strict=True):
        assert len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5 * max(1.0, float(np.abs(w).max())))
