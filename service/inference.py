"""Runs a session off the event loop, in row chunks of at most ``max_batch_size``.

This is the seam a dynamic micro-batcher will replace: task handlers only ever call
``await runner.run(feeds)`` with row-aligned arrays and get row-aligned outputs back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import anyio.to_thread
import numpy as np

from service.exceptions import InferenceError
from service.manifest import TensorSpec

Arrays = dict[str, np.ndarray[Any, Any]]


class ModelRunner:
    def __init__(
        self, session: Any, outputs: Sequence[TensorSpec], max_batch_size: int, model_label: str
    ) -> None:
        self._session = session
        self._outputs = tuple(outputs)
        self._output_names = [spec.name for spec in self._outputs]
        self._max_batch_size = max_batch_size
        self._label = model_label

    async def run(self, feeds: Mapping[str, np.ndarray[Any, Any]]) -> Arrays:
        """Run all rows, chunked; each chunk runs in a worker thread so the event loop stays free.

        abandon_on_cancel lets a request timeout return promptly; the abandoned chunk finishes in its
        thread and its result is discarded.
        """
        parts: list[Arrays] = []
        for chunk in self._chunks(feeds):
            parts.append(await anyio.to_thread.run_sync(self._run_chunk, chunk, abandon_on_cancel=True))
        return self._concat(parts)

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
        results = self._session.run(self._output_names, feeds)
        outputs: Arrays = {}
        for spec, value in zip(self._outputs, results, strict=True):
            array = np.asarray(value)
            self._check_shape(spec, array, rows)
            outputs[spec.name] = array
        return outputs

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
