"""One generation in flight: sampling, stop strings, and the hand-over of text from the scheduler thread.

``advance``, ``fail`` and ``sampler`` are used on the model's scheduler thread; ``next_chunk`` and
``close`` on the event loop. Between them sits a deque (append and popleft are atomic) and an
``asyncio.Event`` that the scheduler sets once per iteration through ``wake``, so a stream costs the
loop one wake-up per decode step at most, and tokens that arrived meanwhile are read as one chunk.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from service.exceptions import InferenceError, InferenceTimeoutError
from service.tasks.sampling import Sampler, SamplingParams
from service.tasks.stop_strings import StopMatcher

FinishReason = Literal["length", "stop"]


@dataclass(frozen=True)
class GenerationRequest:
    prompt: str
    max_new_tokens: int
    sampling: SamplingParams
    stop: tuple[str, ...] = ()


@dataclass(frozen=True)
class Chunk:
    text: str  # new text since the previous chunk (may be empty on the last one)
    finish_reason: FinishReason | None  # set on the last chunk only
    tokens: int  # tokens generated so far


@dataclass(frozen=True)
class _Failure:
    error: BaseException


@dataclass(frozen=True)
class _Expired:
    error: InferenceTimeoutError


class GenerationStream:
    def __init__(
        self,
        prompt_ids: np.ndarray[Any, Any],
        pieces: Sequence[str],
        request: GenerationRequest,
        loop: asyncio.AbstractEventLoop,
        on_close: Callable[[GenerationStream], None],
    ) -> None:
        self.prompt = prompt_ids
        self.prompt_tokens = int(prompt_ids.size)
        self.loop = loop
        self.cancelled = False
        self._pieces = pieces
        self.sampler = Sampler(request.sampling)
        self._max_new_tokens = request.max_new_tokens
        self._stop = request.stop
        self._stops = StopMatcher(request.stop)
        # Scheduler-thread state: everything generated, and how much of it was handed out.
        self._text = ""
        self._emitted = 0
        self._tokens = 0
        self._events: deque[Chunk | _Failure | _Expired] = deque()
        self._ready = asyncio.Event()
        self._on_close = on_close
        self._closed = False
        self.finish_reason: FinishReason | None = None

    # --- scheduler thread ---

    def advance(self, token: int) -> bool:
        piece = self._pieces[token]
        self._text += piece
        self._tokens += 1
        finish: FinishReason | None = None
        end = len(self._text)
        stop_at = self._stops.feed(piece) if self._stop else None
        if stop_at is not None:
            # As OpenAI does: the text ends before the stop string, which is not included.
            finish, end = "stop", stop_at
        elif self._tokens >= self._max_new_tokens:
            finish = "length"
        else:
            end -= self._stops.held_back
        if end > self._emitted or finish is not None:
            self._events.append(Chunk(self._text[self._emitted : end], finish, self._tokens))
            self._emitted = max(self._emitted, end)
        return finish is not None

    def fail(self, error: BaseException) -> None:
        self._events.append(_Failure(error))

    # --- event loop ---

    def wake(self) -> None:
        self._ready.set()

    def expire(self, error: InferenceTimeoutError) -> None:
        """On the event loop, at the deadline: the reader gets ``error`` after the text already generated.

        One timer per stream rather than a timeout around every wait (64 timers set and cancelled per
        decode step at 64 streams).
        """
        self._events.append(_Expired(error))
        self._ready.set()

    async def next_chunk(self) -> Chunk:
        """Text generated since the last call, as one chunk; the last one has a finish_reason.

        Cancel-safe (nothing is lost when a timeout interrupts the wait), so callers may bound it.
        Raises ``InferenceError`` if the model failed on this stream.
        """
        while True:
            await self._ready.wait()
            self._ready.clear()
            texts: list[str] = []
            last: Chunk | None = None
            while self._events:
                event = self._events.popleft()
                if isinstance(event, _Failure):
                    self.close()
                    raise InferenceError(f"generation failed: {event.error}") from event.error
                if isinstance(event, _Expired):
                    self.close()
                    raise event.error
                texts.append(event.text)
                last = event
            if last is not None:
                if last.finish_reason is not None:
                    self.finish_reason = last.finish_reason
                    self.close()
                return Chunk("".join(texts), last.finish_reason, last.tokens)

    def close(self) -> None:
        """Leave the scheduler (if still running) and free the slot; idempotent, on the event loop."""
        if self._closed:
            return
        self._closed = True
        # Unfinished (client gone, timeout, failure): the scheduler drops it before its next run.
        self.cancelled = self.finish_reason is None
        self._on_close(self)
