"""Runs a model's session off the event loop, through the micro-batcher or (batching off) directly.

Task handlers only ever call ``await runner.run(feeds)`` with row-aligned arrays and get
row-aligned outputs back; whether rows were coalesced with other requests is invisible to them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
import numpy as np

from service.exceptions import InferenceError
from service.runtime.batching import BatchObserver, MicroBatcher
from service.runtime.manifest import TensorSpec
from service.runtime.parts import run_in_parts
from service.runtime.session import ArenaShrink

Arrays = dict[str, np.ndarray[Any, Any]]


@dataclass(frozen=True)
class BatchingConfig:
    max_queue_delay_seconds: float
    max_queue_rows: int
    observer: BatchObserver | None = None
    inline_max_seconds: float = 0.0
    lanes: int = 1


class ModelRunner:
    def __init__(
        self,
        session: Any,
        outputs: Sequence[TensorSpec],
        max_batch_size: int,
        model_label: str,
        batching: BatchingConfig | None = None,
        observer: BatchObserver | None = None,
        rows_per_run: int | None = None,
        arena_shrink: ArenaShrink | None = None,
    ) -> None:
        self._session = session
        # Where this runner's runs learn whether to shrink ORT's arena (None: its session has no arena,
        # and ORT refuses the option then).
        self._arena_shrink = arena_shrink
        self._outputs = tuple(outputs)
        self._output_names = [spec.name for spec in self._outputs]
        self._max_batch_size = max_batch_size
        # A micro-batch is run as session.run calls of at most this many rows (the model's measured
        # cheapest size per row, service.runtime.manifest.ServingHints); None = one call per micro-batch.
        self._rows_per_run = rows_per_run
        self._label = model_label
        self._batching = batching
        # Metrics sink (service.metrics.ModelMetrics) for both paths; warm-up (run_sync) is not reported.
        self._observer = observer
        self._batcher: MicroBatcher | None = None
        self._pad_values: dict[str, int | float] = {}
        # Hot reload: a replaced runner is retired; its batcher closes once the requests in it finish.
        self._in_flight = 0
        self._retired = False
        # Schedulers a task runs itself (continuous batching) stop with the runner.
        self._close_hooks: list[Callable[[], None]] = []

    @property
    def rows_per_run(self) -> int | None:
        return self._rows_per_run

    @property
    def in_flight(self) -> int:
        """Requests inside ``run`` or ``run_direct`` now (an unload waits for this to reach 0)."""
        return self._in_flight

    def set_paddable(self, pad_values: Mapping[str, int | float]) -> None:
        """Declare inputs whose graph masks right-padding, so rows of different widths may share a batch."""
        if self._batcher is not None:
            raise RuntimeError("set_paddable must be called before the first run")
        self._pad_values = dict(pad_values)

    async def run(self, feeds: Mapping[str, np.ndarray[Any, Any]]) -> Arrays:
        """Run all rows off the event loop; through the micro-batcher when batching is on."""
        self._in_flight += 1
        try:
            if self._batching is None or self._retired:
                # A request that resolved this runner just before a reload swapped it out still gets its
                # answer from this version, without its (closed) batcher.
                return await self._run_unbatched(feeds)
            return await self._get_batcher().submit(dict(feeds))
        finally:
            self._in_flight -= 1
            if self._retired and self._in_flight == 0:
                self.close()

    def can_enqueue(self, rows: int) -> bool:
        """Whether ``enqueue`` takes this many rows now: batching on, not retired, room in one item."""
        return self._batching is not None and not self._retired and self._get_batcher().can_take(rows)

    def enqueue(self, feeds: Mapping[str, np.ndarray[Any, Any]]) -> asyncio.Future[Arrays]:
        """``run`` without awaiting, for rows that ``can_enqueue``; in flight until the future is done."""
        future = self._get_batcher().enqueue(dict(feeds))
        self._in_flight += 1
        future.add_done_callback(self._enqueued_done)
        return future

    def _enqueued_done(self, _future: asyncio.Future[Arrays]) -> None:
        self._in_flight -= 1
        if self._retired and self._in_flight == 0:
            self.close()

    async def run_direct(self, feeds: Mapping[str, np.ndarray[Any, Any]]) -> Arrays:
        """One session.run over whole tensors, off the event loop, for graphs without a leading batch
        axis (e.g. LSTM state [layers, batch, hidden]): no batching, no row checks."""
        self._in_flight += 1
        try:
            return await anyio.to_thread.run_sync(self._run_whole, dict(feeds), abandon_on_cancel=True)
        finally:
            self._in_flight -= 1

    def run_whole_sync(self, feeds: Mapping[str, np.ndarray[Any, Any]]) -> Arrays:
        """Blocking ``run_direct`` for start-up warm-up."""
        return self._run_whole(dict(feeds))

    def _run_whole(self, feeds: Arrays) -> Arrays:
        try:
            results = self._session.run(self._output_names, feeds, self._run_options())
        except Exception as exc:
            raise InferenceError(f"{self._label}: onnxruntime failed: {exc!r}") from exc
        return {name: np.asarray(value) for name, value in zip(self._output_names, results, strict=True)}

    def retire(self) -> None:
        """Take no new batched work; close the batcher now if idle, else when its last request is answered.

        Call on the event loop thread (where ``run`` counts requests in flight).
        """
        self._retired = True
        if self._in_flight == 0:
            self.close()

    def close(self) -> None:
        if self._batcher is not None:
            self._batcher.close()
        for hook in self._close_hooks:
            hook()

    def add_close_hook(self, hook: Callable[[], None]) -> None:
        self._close_hooks.append(hook)

    def count_in_flight(self, delta: int) -> None:
        """Work a task schedules itself (a generation stream) counts as in flight, so unload and hot
        reload wait for it like for a request in ``run``. Call on the event loop thread."""
        self._in_flight += delta
        if delta < 0 and self._retired and self._in_flight == 0:
            self.close()

    @property
    def observer(self) -> BatchObserver | None:
        return self._observer

    def run_stateful(self, feeds: Mapping[str, np.ndarray[Any, Any]]) -> Arrays:
        """One blocking session.run for a task that batches itself, e.g. recurrent state [L, B, H].

        The batch axis is not necessarily axis 0 here, so feeds are neither split nor coalesced and
        outputs are checked against the manifest's rank and fixed dimensions only. Call it from a
        worker thread, never on the event loop.
        """
        try:
            results = self._session.run(self._output_names, dict(feeds))
        except Exception as exc:
            raise InferenceError(f"{self._label}: onnxruntime failed: {exc!r}") from exc
        outputs: Arrays = {}
        for spec, value in zip(self._outputs, results, strict=True):
            array = np.asarray(value)
            if array.ndim != len(spec.shape) or any(
                want not in (-1, got) for want, got in zip(spec.shape, array.shape, strict=True)
            ):
                raise InferenceError(
                    f"{self._label}: output {spec.name!r} has shape {list(array.shape)}, "
                    f"manifest {spec.shape}"
                )
            outputs[spec.name] = array
        return outputs

    def _get_batcher(self) -> MicroBatcher:
        if self._batcher is None:
            assert self._batching is not None
            self._batcher = MicroBatcher(
                self._run_chunk,
                max_batch_size=self._max_batch_size,
                max_queue_delay_seconds=self._batching.max_queue_delay_seconds,
                max_queue_rows=self._batching.max_queue_rows,
                inline_max_seconds=self._batching.inline_max_seconds,
                lanes=self._batching.lanes,
                pad_values=self._pad_values,
                observer=self._batching.observer or self._observer,
                label=self._label,
            )
        return self._batcher

    async def _run_unbatched(self, feeds: Mapping[str, np.ndarray[Any, Any]]) -> Arrays:
        """Each request's rows run on their own (chunked), concurrently with other requests'.

        abandon_on_cancel lets a request timeout return promptly; the abandoned chunk finishes in its
        thread and its result is discarded.
        """
        parts: list[Arrays] = []
        for chunk in self._chunks(feeds):
            parts.append(await anyio.to_thread.run_sync(self._run_observed, chunk, abandon_on_cancel=True))
        return self._concat(parts)

    def _run_observed(self, feeds: Arrays) -> Arrays:
        started = time.perf_counter()
        outputs = self._run_chunk(feeds)
        if self._observer is not None:
            # Unbatched rows never queue, so their queue wait is 0 by definition.
            rows = next(iter(feeds.values())).shape[0]
            self._observer.batch_done(rows, [0.0], time.perf_counter() - started)
        return outputs

    def run_sync(self, feeds: Mapping[str, np.ndarray[Any, Any]]) -> Arrays:
        """Blocking variant for start-up warm-up, where there is no event loop to protect."""
        return self._concat([self._run_chunk(chunk) for chunk in self._chunks(feeds)])

    def _chunks(self, feeds: Mapping[str, np.ndarray[Any, Any]]) -> list[Arrays]:
        rows = {name: array.shape[0] for name, array in feeds.items()}
        counts = set(rows.values())
        if len(counts) != 1 or 0 in counts:
            raise ValueError(f"feeds must share a non-zero number of rows, got {rows}")
        total = counts.pop()
        return [
            {name: array[start : start + self._max_batch_size] for name, array in feeds.items()}
            for start in range(0, total, self._max_batch_size)
        ]

    def _run_chunk(self, feeds: Arrays) -> Arrays:
        rows = next(iter(feeds.values())).shape[0]
        try:
            results = self._session_run(feeds, rows)
        except Exception as exc:
            # onnxruntime's Fail / InvalidArgument / RuntimeException: a server fault for exactly the
            # requests in this batch (a 500 whose error id is logged with this traceback).
            raise InferenceError(f"{self._label}: onnxruntime failed on {rows} rows: {exc!r}") from exc
        outputs: Arrays = {}
        for spec, value in zip(self._outputs, results, strict=True):
            array = np.asarray(value)
            self._check_shape(spec, array, rows)
            outputs[spec.name] = array
        return outputs

    def _session_run(self, feeds: Arrays, rows: int) -> list[Any]:
        step = self._rows_per_run
        if step is None or rows <= step:
            return self._run_part(feeds)
        return run_in_parts(self._run_part, feeds, rows, step, self._pad_values)

    def _run_part(self, feeds: Arrays) -> list[Any]:
        return list(self._session.run(self._output_names, feeds, self._run_options()))

    def _run_options(self) -> Any:
        return None if self._arena_shrink is None else self._arena_shrink.claim(self._label)

    def _check_shape(self, spec: TensorSpec, array: np.ndarray[Any, Any], rows: int) -> None:
        # A graph that disagrees with its manifest at run time is a broken artifact; say so loudly
        # instead of letting post-processing index into the wrong axis.
        expected = [rows, *spec.shape[1:]]
        ok = array.ndim == len(expected) and all(
            want in (-1, got) for want, got in zip(expected, array.shape, strict=True)
        )
        if not ok:
            raise InferenceError(
                f"{self._label}: output {spec.name!r} has shape {list(array.shape)}, "
                f"manifest says {spec.shape} with {rows} rows"
            )

    @staticmethod
    def _concat(parts: list[Arrays]) -> Arrays:
        if len(parts) == 1:
            return parts[0]
        return {name: np.concatenate([part[name] for part in parts], axis=0) for name in parts[0]}
