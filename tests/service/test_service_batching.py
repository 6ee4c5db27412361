"""The micro-batcher on its own: flush on size and time, idle bypass, order, backpressure, error fan-out.

The model here is a plain row-wise numpy function that records the batches it sees (the batcher is the
thing under test); tests/service/test_service_batching_models.py runs the real ONNX models through it.
"""

import asyncio
import threading
from typing import Any

import numpy as np
import pytest

from service.exceptions import QueueFullError
from service.runtime.batching import MicroBatcher

Arrays = dict[str, np.ndarray]


class RecordingModel:
    """Row-wise y = 2x + row-sum; optionally holds the first batch until released."""

    def __init__(self, hold_first: bool = False, poison: float | None = None) -> None:
        self.batches: list[int] = []
        self.threads: list[int] = []
        self.release = threading.Event()
        if not hold_first:
            self.release.set()
        self.started = threading.Event()
        self.poison = poison

    def __call__(self, feeds: Arrays) -> Arrays:
        self.batches.append(feeds["x"].shape[0])
        self.threads.append(threading.get_ident())
        self.started.set()
        self.release.wait(timeout=30)
        if self.poison is not None and (feeds["x"] == self.poison).any():
            raise RuntimeError("poisoned batch")
        x = feeds["x"]
        return {"y": 2 * x + x.sum(axis=1, keepdims=True)}


def _batcher(model: RecordingModel, **kw: Any) -> MicroBatcher:
    opts = {"max_batch_size": 4, "max_queue_delay_seconds": 60.0, "max_queue_rows": 1000} | kw
    return MicroBatcher(model, label="test", **opts)


def _rows(*values: float, width: int = 3) -> Arrays:
    return {"x": np.array([[v] * width for v in values], dtype=np.float32)}


async def _hold_then(model: RecordingModel, batcher: MicroBatcher, then: list[Arrays]) -> list[Arrays]:
    """Occupy the batcher with one request, queue `then` behind it, release, return all answers."""
    first = asyncio.ensure_future(batcher.submit(_rows(-1.0)))
    await asyncio.get_running_loop().run_in_executor(None, model.started.wait, 5)
    rest = [asyncio.ensure_future(batcher.submit(f)) for f in then]
    await asyncio.sleep(0)
    model.release.set()
    return [await first, *[await r for r in rest]]


def test_idle_batcher_runs_the_first_request_without_waiting_for_the_timer():
    model = RecordingModel()
    batcher = _batcher(model, max_queue_delay_seconds=3600.0)

    async def go() -> Arrays:
        # If the idle request waited for the one-hour timer, wait_for would give up.
        return await asyncio.wait_for(batcher.submit(_rows(1.0)), timeout=10)

    out = asyncio.run(go())
    assert model.batches == [1]
    np.testing.assert_array_equal(out["y"], [[5.0, 5.0, 5.0]])


def test_queued_rows_flush_when_the_batch_is_full_not_on_the_timer():
    model = RecordingModel(hold_first=True)
    batcher = _batcher(model, max_batch_size=4, max_queue_delay_seconds=3600.0)
    answers = asyncio.run(asyncio.wait_for(_hold_then(model, batcher, [_rows(i) for i in range(8)]), 20))
    assert model.batches == [1, 4, 4]
    assert [float(a["y"][0, 0]) for a in answers[1:]] == [2 * i + 3 * i for i in range(8)]


def test_a_partial_batch_flushes_when_the_oldest_row_has_waited_max_delay():
    model = RecordingModel(hold_first=True)
    batcher = _batcher(model, max_batch_size=100, max_queue_delay_seconds=0.05)
    asyncio.run(asyncio.wait_for(_hold_then(model, batcher, [_rows(1), _rows(2), _rows(3)]), 20))
    # Three rows can never fill a batch of 100: only the timer can have sent them.
    assert model.batches == [1, 3]


def test_large_request_is_split_across_batches_and_reassembled_in_order():
    model = RecordingModel()
    batcher = _batcher(model, max_batch_size=3)
    values = np.arange(10, dtype=np.float32)
    out = asyncio.run(batcher.submit(_rows(*values, width=2)))
    assert sorted(model.batches) == [1, 3, 3, 3]
    np.testing.assert_array_equal(out["y"][:, 0], 2 * values + 2 * values)


def test_rows_of_different_shapes_never_share_a_batch():
    model = RecordingModel(hold_first=True)
    batcher = _batcher(model, max_batch_size=10, max_queue_delay_seconds=0.01)
    answers = asyncio.run(
        asyncio.wait_for(
            _hold_then(model, batcher, [_rows(1, width=2), _rows(2, width=5), _rows(3, width=2)]), 20
        )
    )
    assert model.batches == [1, 2, 1]
    assert answers[2]["y"].shape == (1, 5)
    assert float(answers[2]["y"][0, 0]) == 2 * 2 + 5 * 2


def test_paddable_inputs_are_padded_to_share_a_batch():
    model = RecordingModel(hold_first=True)
    batcher = MicroBatcher(
        model, max_batch_size=10, max_queue_delay_seconds=0.01, max_queue_rows=100, pad_values={"x": 0.0}
    )
    answers = asyncio.run(
        asyncio.wait_for(_hold_then(model, batcher, [_rows(1, width=2), _rows(2, width=5)]), 20)
    )
    assert model.batches == [1, 2]
    # The row padded with zeros keeps its sum, so this model's answer does not change.
    assert float(answers[1]["y"][0, 0]) == 2 * 1 + 2 * 1


def test_padding_fills_with_the_declared_pad_value_and_keeps_each_rows_values():
    seen: list[np.ndarray] = []

    def model(feeds: Arrays) -> Arrays:
        seen.append(feeds["ids"].copy())
        return {"y": feeds["ids"].sum(axis=1, keepdims=True)}

    batcher = MicroBatcher(
        model, label="test", max_batch_size=10, max_queue_delay_seconds=0.05, max_queue_rows=100,
        pad_values={"ids": 7},
    )  # fmt: skip
    short = {"ids": np.array([[1, 2]], dtype=np.int64)}
    long = {"ids": np.array([[3, 4, 5, 6], [8, 9, 10, 11]], dtype=np.int64)}

    async def go() -> list[Arrays]:
        # Both are queued before the batcher's task first runs, so they share one batch.
        return list(await asyncio.gather(batcher.submit(short), batcher.submit(long)))

    answers = asyncio.run(asyncio.wait_for(go(), 20))
    batch = next(a for a in seen if a.shape[0] == 3)
    assert batch.dtype == np.int64
    assert batch.tolist() == [[1, 2, 7, 7], [3, 4, 5, 6], [8, 9, 10, 11]]
    assert answers[0]["y"].tolist() == [[1 + 2 + 7 + 7]]
    assert answers[1]["y"].tolist() == [[18], [38]]


def test_backpressure_rejects_beyond_max_queue_rows():
    model = RecordingModel(hold_first=True)
    batcher = _batcher(model, max_queue_rows=5)

    async def go() -> None:
        first = asyncio.ensure_future(batcher.submit(_rows(1)))
        await asyncio.get_running_loop().run_in_executor(None, model.started.wait, 5)
        queued = asyncio.ensure_future(batcher.submit(_rows(1, 2, 3, 4)))
        await asyncio.sleep(0)
        with pytest.raises(QueueFullError, match="max_queue_rows=5"):
            await batcher.submit(_rows(1, 2))
        model.release.set()
        await first
        await queued

    asyncio.run(asyncio.wait_for(go(), 20))


def test_an_error_reaches_exactly_the_requests_in_the_failing_batch():
    model = RecordingModel(hold_first=True, poison=666.0)
    batcher = _batcher(model, max_batch_size=2)

    async def go() -> list[Any]:
        first = asyncio.ensure_future(batcher.submit(_rows(1)))
        await asyncio.get_running_loop().run_in_executor(None, model.started.wait, 5)
        # Batches after the held one: [10, 666] fails together, [20, 30] succeeds.
        rest = [asyncio.ensure_future(batcher.submit(_rows(v))) for v in (10, 666, 20, 30)]
        await asyncio.sleep(0)
        model.release.set()
        return await asyncio.gather(first, *rest, return_exceptions=True)

    results = asyncio.run(asyncio.wait_for(go(), 20))
    assert model.batches == [1, 2, 2]
    assert [isinstance(r, RuntimeError) for r in results] == [False, True, True, False, False]
    assert float(results[3]["y"][0, 0]) == 2 * 20 + 3 * 20


def test_a_timed_out_request_is_dropped_from_the_queue():
    model = RecordingModel(hold_first=True)
    batcher = _batcher(model, max_batch_size=10, max_queue_delay_seconds=0.0)

    async def go() -> None:
        first = asyncio.ensure_future(batcher.submit(_rows(1)))
        await asyncio.get_running_loop().run_in_executor(None, model.started.wait, 5)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(batcher.submit(_rows(2, 3)), timeout=0.01)
        kept = asyncio.ensure_future(batcher.submit(_rows(4)))
        await asyncio.sleep(0)
        model.release.set()
        await first
        assert float((await kept)["y"][0, 0]) == 2 * 4 + 3 * 4
        assert batcher.queued_rows == 0

    asyncio.run(asyncio.wait_for(go(), 20))
    # The abandoned rows never reached the model.
    assert model.batches == [1, 1]


def test_a_short_batch_in_a_quiet_period_runs_on_the_loop_thread_once_its_speed_is_known():
    model = RecordingModel()
    batcher = _batcher(model, inline_max_seconds=1.0)

    async def scenario() -> tuple[int, list[Arrays]]:
        answers = [await batcher.submit(_rows(float(i))) for i in range(3)]
        return threading.get_ident(), answers

    loop_thread, answers = asyncio.run(scenario())
    # The first batch has no speed estimate yet, so it goes to the worker thread; later ones do not.
    assert model.threads[0] != loop_thread
    assert model.threads[1:] == [loop_thread, loop_thread]
    for i, answer in enumerate(answers):
        np.testing.assert_array_equal(answer["y"], 2 * _rows(float(i))["x"] + 3 * i)


def test_no_inline_run_when_the_estimate_exceeds_the_budget_or_the_batcher_is_busy():
    slow = RecordingModel()
    over_budget = _batcher(slow, inline_max_seconds=1e-12)

    async def sequential() -> int:
        for i in range(3):
            await over_budget.submit(_rows(float(i)))
        return threading.get_ident()

    loop_thread = asyncio.run(sequential())
    assert loop_thread not in slow.threads and len(slow.threads) == 3

    held = RecordingModel(hold_first=True)
    busy = _batcher(held, inline_max_seconds=1.0, max_queue_delay_seconds=0.01)

    async def queued_behind_a_running_batch() -> int:
        await _hold_then(held, busy, [_rows(5.0), _rows(6.0)])
        return threading.get_ident()

    loop_thread = asyncio.run(queued_behind_a_running_batch())
    # The speed is known once the held batch finishes, but the rows queued behind it did not arrive in
    # a quiet period: their batch goes to the worker thread too.
    assert held.batches == [1, 2]
    assert loop_thread not in held.threads


class ConcurrencyProbe:
    """Row-wise y = 3x; counts how many batches are inside it at once, holding each until released."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.inside = 0
        self.most_inside = 0
        self.both_inside = threading.Event()
        self.release = threading.Event()

    def __call__(self, feeds: Arrays) -> Arrays:
        with self.lock:
            self.inside += 1
            self.most_inside = max(self.most_inside, self.inside)
            if self.inside == 2:
                self.both_inside.set()
        self.release.wait(timeout=30)
        with self.lock:
            self.inside -= 1
        return {"y": 3 * feeds["x"]}


@pytest.mark.parametrize("lanes", [1, 2])
def test_lanes_bound_how_many_batches_run_at_once_and_answers_stay_with_their_requests(lanes: int) -> None:
    probe = ConcurrencyProbe()
    batcher = MicroBatcher(
        probe, label="test", max_batch_size=2, max_queue_delay_seconds=0.0, max_queue_rows=100, lanes=lanes
    )

    async def scenario() -> list[Arrays]:
        calls = [asyncio.ensure_future(batcher.submit(_rows(float(v), float(v) + 0.5))) for v in range(6)]
        # Two lanes: a second batch starts while the first is still inside the model.
        both = await asyncio.get_running_loop().run_in_executor(None, probe.both_inside.wait, 0.5)
        assert both == (lanes == 2)
        probe.release.set()
        return [await c for c in calls]

    answers = asyncio.run(scenario())
    assert probe.most_inside == lanes
    for v, answer in enumerate(answers):
        np.testing.assert_array_equal(answer["y"], 3 * _rows(float(v), float(v) + 0.5)["x"])
    batcher.close()


def test_enqueue_queues_rows_without_awaiting_and_shares_batches_with_submit():
    model = RecordingModel(hold_first=True)
    batcher = _batcher(model, max_queue_rows=3)

    async def go() -> tuple[Arrays, Arrays, bool, bool]:
        first = asyncio.ensure_future(batcher.submit(_rows(-1.0)))
        await asyncio.get_running_loop().run_in_executor(None, model.started.wait, 5)
        queued = batcher.enqueue(_rows(1.0, 2.0))
        # Two rows are queued; a third fits max_queue_rows=3, a fourth would not; nor does a batch-size item.
        fits, full = batcher.can_take(1), batcher.can_take(2)
        alongside = asyncio.ensure_future(batcher.submit(_rows(3.0)))
        await asyncio.sleep(0)
        model.release.set()
        await first
        return await queued, await alongside, fits, full

    queued, alongside, fits, full = asyncio.run(go())
    assert (fits, full) == (True, False)
    assert not batcher.can_take(5)  # more than max_batch_size rows: submit splits them, enqueue does not
    assert model.batches == [1, 3]  # the enqueued rows and the submitted row ran in one batch
    np.testing.assert_array_equal(queued["y"], [[5.0] * 3, [10.0] * 3])
    np.testing.assert_array_equal(alongside["y"], [[15.0] * 3])


def test_a_cancelled_enqueued_item_leaves_the_queue_without_running():
    model = RecordingModel(hold_first=True)
    batcher = _batcher(model)

    async def go() -> Arrays:
        first = asyncio.ensure_future(batcher.submit(_rows(-1.0)))
        await asyncio.get_running_loop().run_in_executor(None, model.started.wait, 5)
        dropped = batcher.enqueue(_rows(7.0))
        kept = asyncio.ensure_future(batcher.submit(_rows(1.0)))
        await asyncio.sleep(0)
        dropped.cancel()
        model.release.set()
        await first
        return await kept

    kept = asyncio.run(go())
    assert model.batches == [1, 1]  # the cancelled row never reached the model
    np.testing.assert_array_equal(kept["y"], [[5.0] * 3])
    assert batcher.queued_rows == 0
