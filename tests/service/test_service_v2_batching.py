"""/v1 and V2 requests for one model share its micro-batcher: their rows coalesce into one session.run,
and each row's answer is the same whichever protocol sent it and whatever it was batched with."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY
from svc_helpers import MODELS, make_settings, read_m4_series

from service.runtime.registry import ModelRegistry
from service.tasks.forecast import ForecastHandler, ForecastQuery, SeriesInput

CPU = ["CPUExecutionProvider"]
SERIES = [np.asarray(v[-336:], dtype=np.float32) for _, v in read_m4_series(24)]


def _registry(delay_seconds: float) -> ModelRegistry:
    registry = ModelRegistry(
        make_settings(MODELS, max_queue_delay_seconds=delay_seconds, inline_max_seconds=0.0,
                      batch_size_hints=False, max_batch_size=128),
        CPU,
    )  # fmt: skip
    registry.load()
    return registry


@pytest.fixture(scope="module")
def handler() -> Iterator[ForecastHandler]:
    registry = _registry(0.002)
    handler = registry.get("m4-hourly").handler
    assert isinstance(handler, ForecastHandler)
    yield handler
    registry.close()


def _batches() -> tuple[float, float]:
    labels = {"model": "m4-hourly"}
    count = REGISTRY.get_sample_value("seqserve_batch_rows_count", labels) or 0.0
    total = REGISTRY.get_sample_value("seqserve_batch_rows_sum", labels) or 0.0
    return count, total


def test_a_v1_row_and_a_v2_row_share_one_session_run() -> None:
    registry = _registry(0.25)
    handler = registry.get("m4-hourly").handler
    assert isinstance(handler, ForecastHandler)
    runner = registry.get("m4-hourly").runner
    assert runner is not None

    async def scenario() -> tuple[float, float]:
        # A 64-row batch keeps the model busy, so the next two requests queue behind it together.
        blocker = asyncio.create_task(runner.run({"values": np.stack([SERIES[0]] * 64)}))
        for _ in range(3):
            await asyncio.sleep(0)
        before = _batches()
        v1, v2 = await asyncio.gather(
            handler.forecast(ForecastQuery([SeriesInput(SERIES[1])])),
            handler.infer_tensors({"values": SERIES[2][None, :]}),
        )
        await blocker
        after = _batches()
        assert v1[0].point.shape == (48,) and v2["quantiles"].shape == (1, 48, 7)
        return after[0] - before[0], after[1] - before[1]

    try:
        runs, rows = asyncio.run(scenario())
    finally:
        registry.close()
    # The blocker's batch (64 rows) finishes after `before` was read; then one batch of 2 rows.
    assert (runs, rows) == (2, 66)


def _solo(handler: ForecastHandler, index: int) -> np.ndarray:
    async def one() -> np.ndarray:
        return (await handler.infer_tensors({"values": SERIES[index][None, :]}))["quantiles"][0]

    return asyncio.run(one())


@settings(max_examples=12, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))  # fmt: skip
@given(st.lists(st.tuples(st.integers(0, len(SERIES) - 1), st.booleans()), min_size=2, max_size=16))
def test_each_row_gets_its_solo_answer_over_either_protocol(
    handler: ForecastHandler, picks: list[tuple[int, bool]]
) -> None:
    solo = {index: _solo(handler, index) for index, _ in picks}

    async def mixed() -> list[np.ndarray]:
        order = list(range(len(picks)))
        random.Random(len(picks)).shuffle(order)  # arrival order varies; answers must not
        calls = []
        for position in order:
            index, over_v2 = picks[position]
            if over_v2:
                calls.append(handler.infer_tensors({"values": SERIES[index][None, :]}))
            else:
                calls.append(handler.forecast(ForecastQuery([SeriesInput(SERIES[index])])))
        results = await asyncio.gather(*calls)
        answers: list[np.ndarray] = [np.empty(0)] * len(picks)
        for position, result in zip(order, results, strict=True):
            if isinstance(result, dict):
                answers[position] = result["quantiles"][0]
            else:
                answers[position] = np.stack(list(result[0].quantiles.values()), axis=1)
        return answers

    for (index, _), got in zip(picks, asyncio.run(mixed()), strict=True):
        np.testing.assert_allclose(got, solo[index], rtol=1e-5, atol=1e-5)
