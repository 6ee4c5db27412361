"""A sliding window of feature rows, bounded in rows (a ring buffer) and in age (timestamps)."""

from __future__ import annotations

from typing import Any

import numpy as np

FloatArray = np.ndarray[Any, np.dtype[np.float64]]


class RowWindow:
    """Fixed-size numpy storage: adding a block of rows is one indexed assignment, never a Python loop."""

    def __init__(self, max_rows: int, width: int, max_seconds: float) -> None:
        if max_rows <= 0 or max_seconds <= 0:
            raise ValueError("a window needs max_rows > 0 and max_seconds > 0")
        self.max_rows = max_rows
        self.max_seconds = max_seconds
        self._values = np.zeros((max_rows, width))
        # -inf marks a slot never written; it is older than any cut-off.
        self._stamps = np.full(max_rows, -np.inf)
        self._head = 0

    def add(self, rows: FloatArray, now: float) -> None:
        """Append [n, width] rows stamped ``now``; the oldest rows are overwritten past ``max_rows``."""
        rows = rows[-self.max_rows :]
        n = rows.shape[0]
        if n == 0:
            return
        slots = (self._head + np.arange(n)) % self.max_rows
        self._values[slots] = rows
        self._stamps[slots] = now
        self._head = int((self._head + n) % self.max_rows)

    def current(self, now: float) -> tuple[FloatArray, float | None]:
        """Rows no older than ``max_seconds`` (any order), and the age of the oldest in seconds."""
        live = self._stamps >= now - self.max_seconds
        if not live.any():
            return self._values[:0], None
        return self._values[live], float(now - self._stamps[live].min())
