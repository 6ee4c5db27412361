"""Dynamic micro-batching: one batcher per model coalesces rows from concurrent requests.

How a batch forms:
* **Idle bypass.** When nothing is queued or running, the first request runs at once: a quiet
  service pays no timer.
* **Natural coalescing.** While a batch runs in the worker thread, new requests queue up; the
  next batch takes them all (up to ``max_batch_size`` rows), so batch size follows load.
* **Bounded wait.** When requests are already queued, the batcher waits at most
  ``max_queue_delay_seconds`` after the oldest one arrived for the batch to fill.
* **Off the event loop.** Batches run in worker threads, so the loop keeps parsing the next requests
  meanwhile. A model has ``lanes`` threads (``batch_lanes``; one per core the worker's ORT threads
  leave free): with one, batches run one at a time, which is what makes the next batch grow while
  the current one runs; with more, a batch starts as soon as a lane is free, and session runs, which
  release the GIL, use several cores from one worker. The one exception is a quiet period: a batch
  that arrived idle and is expected (from the model's measured seconds per row) to take at most
  ``inline_max_seconds`` runs on the loop thread. Nothing is waiting to be parsed then, and two
  thread handoffs (there and back) cost more than such a batch blocks the loop: at one client, four
  interleaved rounds measured p50 1.6-2.1 ms instead of 1.9-2.4 ms and 15-50% more requests/s, with
  no change at 64 clients.

Rows only share a batch when their shapes agree, except along axes the task declares paddable
(sentiment ``input_ids``, whose graph masks padding). Forecast rows of different lengths go to
different batches, so no answer changes. A request larger than ``max_batch_size`` is split into
chunks and reassembled in order. A failure of one ``session.run`` reaches exactly the requests
whose rows were in it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Hashable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from service.exceptions import QueueFullError

logger = logging.getLogger(__name__)

Arrays = dict[str, np.ndarray[Any, Any]]


class BatchObserver(Protocol):
    """Where the batcher reports what it does (metrics); kept abstract so batching stays testable."""

    def queue_rows(self, rows: int) -> None: ...

    def batch_done(self, rows: int, queue_wait_seconds: list[float], inference_seconds: float) -> None: ...

    def rejected(self, reason: str) -> None: ...


class NullObserver:
    def queue_rows(self, rows: int) -> None:
        pass

    def batch_done(self, rows: int, queue_wait_seconds: list[float], inference_seconds: float) -> None:
        pass

    def rejected(self, reason: str) -> None:
        pass


@dataclass(eq=False)
class _Item:
    feeds: Arrays
    rows: int
    key: Hashable
    future: asyncio.Future[Arrays]
    # True when nothing was queued or running as this arrived: the start of a quiet period.
    arrived_idle: bool = False
    enqueued: float = field(default_factory=time.perf_counter)


def row_count(feeds: Mapping[str, np.ndarray[Any, Any]]) -> int:
    counts = {name: array.shape[0] for name, array in feeds.items()}
    if len(set(counts.values())) != 1 or 0 in counts.values():
        raise ValueError(f"feeds must share a non-zero number of rows, got {counts}")
    return int(next(iter(counts.values())))


class MicroBatcher:
    def __init__(
        self,
        run_batch: Callable[[Arrays], Arrays],
        *,
        max_batch_size: int,
        max_queue_delay_seconds: float,
        max_queue_rows: int,
        pad_values: Mapping[str, int | float] | None = None,
        observer: BatchObserver | None = None,
        label: str = "model",
        inline_max_seconds: float = 0.0,
        lanes: int = 1,
    ) -> None:
        self._run_batch = run_batch
        self._max_batch = max_batch_size
        self._max_delay = max_queue_delay_seconds
        self._max_queue_rows = max_queue_rows
        self._pad_values = dict(pad_values or {})
        self._observer = observer or NullObserver()
        self._label = label
        self._inline_max_seconds = inline_max_seconds
        # Smoothed wall seconds per row of finished batches; None until the first batch finishes.
        self._seconds_per_row: float | None = None
        self._queue: deque[_Item] = deque()
        self._queued_rows = 0
        # One thread per lane: with one lane, batches of a model run one at a time, which is what makes
        # the next batch grow while the current one runs; ORT parallelises inside the batch.
        self._lanes = lanes
        self._executor = ThreadPoolExecutor(max_workers=lanes, thread_name_prefix=f"batch-{label}")
        self._wakeup: asyncio.Event | None = None
        self._lane_free: asyncio.Event | None = None
        self._running = 0
        self._task: asyncio.Task[None] | None = None
        # Batches in flight on the lanes (kept so that they are not collected while running).
        self._batches: set[asyncio.Task[None]] = set()

    @property
    def queued_rows(self) -> int:
        return self._queued_rows

    async def submit(self, feeds: Arrays) -> Arrays:
        """Run these rows (in as many batches as needed) and return their outputs in order."""
        rows = row_count(feeds)
        if self._queued_rows + rows > self._max_queue_rows:
            self._observer.rejected("queue_full")
            raise QueueFullError(
                f"{self._label}: queue holds {self._queued_rows} rows; {rows} more would pass "
                f"max_queue_rows={self._max_queue_rows}"
            )
        self._ensure_running()
        key = self._key(feeds)
        loop = asyncio.get_running_loop()
        if rows <= self._max_batch:
            items = [_Item(feeds, rows, key, loop.create_future())]
        else:
            items = [
                _Item({k: v[s : s + self._max_batch] for k, v in feeds.items()},
                      min(self._max_batch, rows - s), key, loop.create_future())
                for s in range(0, rows, self._max_batch)
            ]  # fmt: skip
        self._put(items, rows)
        try:
            parts = [await item.future for item in items]
        finally:
            # On timeout or error, queued siblings must not run for nobody.
            for item in items:
                item.future.cancel()
        return parts[0] if len(parts) == 1 else {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def can_take(self, rows: int) -> bool:
        """Whether ``enqueue`` takes this many rows now: one item, within ``max_queue_rows``."""
        return 0 < rows <= self._max_batch and self._queued_rows + rows <= self._max_queue_rows

    def enqueue(self, feeds: Arrays) -> asyncio.Future[Arrays]:
        """``submit`` without awaiting, for rows that ``can_take``: the future gets their outputs.

        Cancelling the future before its batch runs takes the rows out of the queue, as a timeout
        does in ``submit``.
        """
        rows = row_count(feeds)
        if not self.can_take(rows):
            raise ValueError(f"{self._label}: {rows} rows do not fit one queued item now")
        self._ensure_running()
        item = _Item(feeds, rows, self._key(feeds), asyncio.get_running_loop().create_future())
        self._put([item], rows)
        return item.future

    def _put(self, items: list[_Item], rows: int) -> None:
        if not self._queue and not self._running:
            # The whole request counts as the start of a quiet period: its tail chunk must not wait
            # for the timer behind its own head.
            for item in items:
                item.arrived_idle = True
        self._queue.extend(items)
        self._queued_rows += rows
        self._observer.queue_rows(self._queued_rows)
        assert self._wakeup is not None
        self._wakeup.set()

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _key(self, feeds: Arrays) -> Hashable:
        # Rows can share a batch when every non-paddable input agrees on its per-row shape.
        return tuple(
            (name, array.ndim if name in self._pad_values else array.shape[1:])
            for name, array in sorted(feeds.items())
        )

    def _ensure_running(self) -> None:
        # A batcher outlives event loops in tests (one loop per test client); rebind to the current one.
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done() or self._task.get_loop() is not loop:
            self._wakeup = asyncio.Event()
            self._lane_free = asyncio.Event()
            self._queue.clear()
            self._queued_rows = 0
            self._running = 0
            self._batches.clear()
            self._task = loop.create_task(self._loop(), name=f"batcher-{self._label}")

    async def _loop(self) -> None:
        assert self._wakeup is not None and self._lane_free is not None
        while True:
            while not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
            while self._running >= self._lanes:
                self._lane_free.clear()
                await self._lane_free.wait()
            if not self._queue[0].arrived_idle:
                await self._wait_to_fill()
            batch = self._take()
            if not batch:
                continue
            self._running += 1
            rows = sum(i.rows for i in batch)
            if self._runs_inline(batch[0], rows):
                await self._run(batch, rows, inline=True)
            else:
                task = asyncio.get_running_loop().create_task(self._run(batch, rows, inline=False))
                self._batches.add(task)
                task.add_done_callback(self._batches.discard)

    async def _run(self, batch: list[_Item], rows: int, inline: bool) -> None:
        """One batch on a lane; its outputs (or its failure) go to exactly its requests."""
        started = time.perf_counter()
        waits = [started - item.enqueued for item in batch]
        try:
            feeds = self._collate(batch)
            if inline:
                out = self._run_batch(feeds)
            else:
                out = await asyncio.get_running_loop().run_in_executor(self._executor, self._run_batch, feeds)
        except Exception as exc:
            logger.warning("%s: batch of %d rows failed: %r", self._label, len(batch), exc)
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(exc)
            return
        finally:
            self._running -= 1
            assert self._lane_free is not None
            self._lane_free.set()
            self._observer.queue_rows(self._queued_rows)
        elapsed = time.perf_counter() - started
        self._learn_speed(rows, elapsed)
        self._observer.batch_done(rows, waits, elapsed)
        offset = 0
        for item in batch:
            if not item.future.done():
                item.future.set_result({k: v[offset : offset + item.rows] for k, v in out.items()})
            offset += item.rows

    def _runs_inline(self, first: _Item, rows: int) -> bool:
        if not first.arrived_idle or self._seconds_per_row is None:
            return False
        return rows * self._seconds_per_row <= self._inline_max_seconds

    def _learn_speed(self, rows: int, elapsed_seconds: float) -> None:
        # Per-row cost falls with batch size, so estimates from big batches run a little low for a
        # single row; an exponential average follows changes in machine load within a few batches.
        per_row = elapsed_seconds / rows
        previous = self._seconds_per_row
        self._seconds_per_row = per_row if previous is None else 0.8 * previous + 0.2 * per_row

    async def _wait_to_fill(self) -> None:
        assert self._wakeup is not None
        deadline = self._queue[0].enqueued + self._max_delay
        while self._queued_rows < self._max_batch:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                return
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), remaining)
            except TimeoutError:
                return

    def _take(self) -> list[_Item]:
        """Oldest live item's key decides the batch; same-key items join in FIFO order while they fit."""
        batch: list[_Item] = []
        rest: deque[_Item] = deque()
        key: Hashable = None
        rows = 0
        while self._queue:
            item = self._queue.popleft()
            if item.future.done():  # cancelled by a timeout or a failed sibling chunk
                self._queued_rows -= item.rows
                continue
            if not batch:
                key = item.key
            if item.key == key and rows + item.rows <= self._max_batch:
                batch.append(item)
                rows += item.rows
                self._queued_rows -= item.rows
            else:
                rest.append(item)
                if rows >= self._max_batch:
                    break
        rest.extend(self._queue)
        self._queue = rest
        return batch

    def _collate(self, batch: list[_Item]) -> Arrays:
        if len(batch) == 1:
            return batch[0].feeds
        feeds: Arrays = {}
        for name in batch[0].feeds:
            arrays = [item.feeds[name] for item in batch]
            widths = {a.shape[1] for a in arrays} if name in self._pad_values else set()
            if len(widths) > 1:
                # One filled array and a copy per request: np.pad per request cost 3% of a sentiment
                # worker's busy time at 64 connections (py-spy), for what is a row copy.
                rows = sum(a.shape[0] for a in arrays)
                out = np.full((rows, max(widths)), self._pad_values[name], dtype=np.result_type(*arrays))
                offset = 0
                for a in arrays:
                    out[offset : offset + a.shape[0], : a.shape[1]] = a
                    offset += a.shape[0]
                feeds[name] = out
            else:
                feeds[name] = np.concatenate(arrays)
        return feeds
