"""What the continuous-batching scheduler (``continuous.py``) works with: the graph's tensor names, the
jobs it advances, and the thread that wakes event loops for it."""

from __future__ import annotations

import asyncio
import contextlib
import queue
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

Array = np.ndarray[Any, Any]
Wakes = queue.SimpleQueue[tuple[asyncio.AbstractEventLoop, list["Job"]] | None]

# The next token of each job from its row of logits [B, V] (each job samples with its own generator).
PickTokens = Callable[[Sequence["Job"], Array], list[int]]


class Job(Protocol):
    """One generation as the scheduler sees it. ``advance`` and ``fail`` run on the scheduler thread."""

    prompt: Array  # 1-D int64 token ids, at least one
    cancelled: bool  # set from the event loop; the stream leaves before the next session.run
    loop: asyncio.AbstractEventLoop

    def advance(self, token: int) -> bool:
        """Take the next token; True when the stream is finished."""
        ...

    def fail(self, error: BaseException) -> None: ...

    def wake(self) -> None:
        """On the event loop: new tokens (or the end) are ready to read."""
        ...


@dataclass(frozen=True)
class StepGraph:
    """Tensor names of a graph that serves prefill (T = prompt chunk) and decode (T = 1)."""

    token_input: str
    state_inputs: tuple[str, ...]
    state_outputs: tuple[str, ...]
    logits_output: str
    num_layers: int
    hidden_size: int

    def zero_state(self, rows: int) -> list[Array]:
        shape = (self.num_layers, rows, self.hidden_size)
        return [np.zeros(shape, dtype=np.float32) for _ in self.state_inputs]


def waker(wakes: Wakes) -> None:
    """Wake event loops for the scheduler, which then never waits on the GIL for the self-pipe write.

    ``call_soon_threadsafe`` writes to the loop's self-pipe, a system call that releases the GIL; the
    loop thread, just woken by it, usually takes the GIL and holds it while it writes every stream's
    event, so the scheduler would start its next step milliseconds late (measured: 2.3 ms per step at
    64 streams). From this thread that wait overlaps the next ``session.run`` instead.
    """
    while (item := wakes.get()) is not None:
        loop, jobs = item
        # A closed loop (RuntimeError) has nobody waiting for these streams any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_wake_all, jobs)


def _wake_all(jobs: list[Job]) -> None:
    for job in jobs:
        job.wake()
