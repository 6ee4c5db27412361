"""Continuous (iteration-level) batching for recurrent generation, as Orca and vLLM do for transformers.

One scheduler thread per model loops over *iterations*. Each iteration:

1. takes the streams admitted since the last one, and drops cancelled ones (a client that hung up
   leaves before the next ``session.run``);
2. prefill. With nothing decoding, prompts are fed in chunks of at most ``chunk_tokens`` (equal
   lengths share one ``session.run``; chunks per iteration add up to about ``chunk_tokens`` time
   steps), the fastest way to a first token. With streams running, a new stream instead joins the
   decode batch at once and feeds its prompt one token per step: one more row in a run that happens
   anyway, where a separate prefill run would stall every running stream for the prompt's length;
3. runs **one** decode ``session.run`` over every stream in the batch: last tokens (or next prompt
   tokens) ``[B, 1]`` and the recurrent state, kept gathered as ``[L, B, H]`` so a step needs no copy
   unless the set of streams changed. Finished streams leave right after the step.

The graph returns bitwise-identical rows whatever the batch size, and a prompt fed token by token
leaves bitwise the state of the same prompt fed as one chunk (both measured on this model's graph; the
tests compare texts alone and beside 63 other streams). Each stream samples with its own generator, so
its text does not depend on what else runs. The state exists only in this thread, for the life of its
stream. Session runs release the GIL, so the event loop keeps serving meanwhile; the loop is woken once
per iteration for every stream that got tokens.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from service.metrics import GenerationMetrics
from service.runtime.inference import ModelRunner
from service.runtime.step_model import Array, Job, PickTokens, StepGraph, Wakes, waker

logger = logging.getLogger(__name__)

# While streams are decoding, a prompt (or what is left of it) up to this long is fed one token per step
# as a row of the decode batch: at 64 streams a row costs ~1/64 of a step, where a prefill run of T
# tokens stalls every stream for ~T single-row steps. A longer remainder is fed in chunks first, so a
# 4,000-character prompt still reaches its first token in seconds rather than 4,000 steps.
ROW_PREFILL_MAX_TOKENS = 128
# "continuous" is what serves; the other two exist as benchmark baselines (benchmarks/generation.py):
# "static" lets waiting streams in only when the whole batch has finished (it waits for its longest
# member), "sequential" runs one stream at a time.
Scheduling = Literal["continuous", "static", "sequential"]


@dataclass(eq=False)
class _Stream:
    job: Job
    admitted: float
    cursor: int = 0  # prompt tokens fed so far
    state: list[Array] = field(default_factory=list)  # [L, 1, H] per state tensor while prefilling
    last_token_at: float = 0.0
    next_token: int = 0  # the decode input once prefill is done


class ContinuousScheduler:
    def __init__(
        self,
        runner: ModelRunner,
        graph: StepGraph,
        pick: PickTokens,
        chunk_tokens: int,
        metrics: GenerationMetrics,
        label: str,
        scheduling: Scheduling = "continuous",
    ) -> None:
        self._runner = runner
        self._scheduling = scheduling
        self._graph = graph
        self._pick = pick
        self._chunk = chunk_tokens
        self._metrics = metrics
        self._label = label
        self._cond = threading.Condition()
        self._pending: list[_Stream] = []
        self._thread: threading.Thread | None = None
        self._closed = False
        # Owned by the scheduler thread only.
        self._prefilling: list[_Stream] = []
        self._decoding: list[_Stream] = []
        self._states: list[Array] = graph.zero_state(0)
        self._next_tokens = np.zeros(0, dtype=np.int64)
        self._touched: list[_Stream] = []
        self._wakes: Wakes = queue.SimpleQueue()

    def submit(self, job: Job) -> None:
        with self._cond:
            self._pending.append(_Stream(job, time.perf_counter(), state=self._graph.zero_state(1)))
            if self._thread is None:
                # Started on demand, and again after close(): a request that resolved this model just
                # before a hot reload swapped it out still finishes on it.
                self._thread = threading.Thread(
                    target=self._loop, name=f"generate-{self._label}", daemon=True
                )
                self._thread.start()
                name = f"wake-{self._label}"
                threading.Thread(target=waker, args=(self._wakes,), name=name, daemon=True).start()
            self._cond.notify()

    def close(self) -> None:
        """Take the thread down once the streams it has are finished."""
        with self._cond:
            self._closed = True
            self._cond.notify()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not (self._pending or self._prefilling or self._decoding):
                    if self._closed:
                        self._thread = None
                        self._wakes.put(None)  # its waker goes too
                        return
                    self._cond.wait()
                self._admit()
            try:
                self._iteration()
            except Exception as exc:  # never leave streams hanging on a bug: fail them all, carry on
                logger.exception("generation scheduler %s failed", self._label)
                for stream in [*self._prefilling, *self._decoding]:
                    self._fail(stream, exc)
                self._prefilling.clear()
                self._keep_decoding([])
            self._wake_touched()

    def _admit(self) -> None:
        """Move waiting streams in (under the lock); only "continuous" lets them join a running batch."""
        if self._scheduling != "continuous" and (self._prefilling or self._decoding):
            return
        take = 1 if self._scheduling == "sequential" else len(self._pending)
        self._prefilling.extend(self._pending[:take])
        del self._pending[:take]

    def _iteration(self) -> None:
        self._prefilling = [s for s in self._prefilling if not s.job.cancelled]
        if any(s.job.cancelled for s in self._decoding):
            self._keep_decoding([i for i, s in enumerate(self._decoding) if not s.job.cancelled])
        if self._prefilling and self._decoding:
            # Streams are running: a new stream joins the batch and feeds its prompt one token per step,
            # one more row each (a separate prefill run would stall everyone for its whole length). Only
            # what is left of a long prompt beyond ROW_PREFILL_MAX_TOKENS is fed in chunks first.
            rows = [s for s in self._prefilling if s.job.prompt.size - s.cursor <= ROW_PREFILL_MAX_TOKENS]
            for stream in rows:
                stream.next_token = int(stream.job.prompt[stream.cursor])
            joining = {id(s) for s in rows}
            self._prefilling = [s for s in self._prefilling if id(s) not in joining]
            if self._prefilling:
                rows += self._prefill()
            if rows:
                self._join(rows)
        elif self._prefilling:
            # Nothing to stall: prefill in chunks, the fastest way to a first token.
            joined = self._prefill()
            if joined:
                self._join(joined)
        if self._decoding:
            self._decode()

    def _prefill(self) -> list[_Stream]:
        """One chunk for as many prefilling streams as the budget allows; returns those now decoding."""
        groups: dict[int, list[_Stream]] = defaultdict(list)
        for stream in self._prefilling:  # in admission order, so the oldest group goes first
            size = min(self._chunk, stream.job.prompt.size - stream.cursor)
            groups[size].append(stream)
        joined: list[_Stream] = []
        steps = 0
        for size, streams in groups.items():
            if steps and steps + size > self._chunk:
                break
            steps += size
            joined.extend(self._prefill_group(size, streams))
        # Out go streams whose prompt is fed: those that joined, and those whose first token ended them.
        self._prefilling = [
            s for s in self._prefilling if s.cursor < s.job.prompt.size and not s.job.cancelled
        ]
        return [s for s in joined if not s.job.cancelled]

    def _prefill_group(self, size: int, streams: list[_Stream]) -> list[_Stream]:
        graph = self._graph
        tokens = np.stack([s.job.prompt[s.cursor : s.cursor + size] for s in streams])
        feeds = {graph.token_input: tokens}
        for i, name in enumerate(graph.state_inputs):
            feeds[name] = np.concatenate([s.state[i] for s in streams], axis=1)
        outputs = self._run(feeds, streams)
        if outputs is None:
            return []
        logits = outputs[graph.logits_output]
        now = time.perf_counter()
        done: list[int] = []
        for row, stream in enumerate(streams):
            stream.cursor += size
            stream.state = [outputs[name][:, row : row + 1] for name in graph.state_outputs]
            if stream.cursor == stream.job.prompt.size:
                done.append(row)
        if not done:
            return []
        # Prompts done: their last logits give the first tokens.
        firsts = self._pick([streams[row].job for row in done], logits[done])
        joined = []
        for row, token in zip(done, firsts, strict=True):
            stream = streams[row]
            stream.next_token = token
            self._metrics.ttft.observe(now - stream.admitted)
            self._metrics.tokens.inc()
            stream.last_token_at = now
            self._touched.append(stream)
            if not stream.job.advance(stream.next_token):
                joined.append(stream)
        return joined

    def _join(self, streams: list[_Stream]) -> None:
        """Append prefilled streams to the decode batch, gathering their state along the batch axis."""
        self._states = [
            np.concatenate([batch, *(s.state[i] for s in streams)], axis=1)
            for i, batch in enumerate(self._states)
        ]
        joining = np.asarray([s.next_token for s in streams], dtype=np.int64)
        self._next_tokens = np.concatenate([self._next_tokens, joining])
        for stream in streams:
            stream.state = []
        self._decoding.extend(streams)

    def _decode(self) -> None:
        graph = self._graph
        streams = self._decoding
        feeds = {graph.token_input: self._next_tokens[:, None]}
        feeds.update(zip(graph.state_inputs, self._states, strict=True))
        outputs = self._run(feeds, streams)
        if outputs is None:
            self._keep_decoding([])
            return
        self._states = [outputs[name] for name in graph.state_outputs]
        logits = outputs[graph.logits_output]
        now = time.perf_counter()
        next_tokens = self._next_tokens.copy()
        emitting: list[int] = []
        for row, stream in enumerate(streams):
            size = stream.job.prompt.size
            if stream.cursor < size:  # this row fed a prompt token
                stream.cursor += 1
                if stream.cursor < size:
                    next_tokens[row] = stream.job.prompt[stream.cursor]
                    continue
            emitting.append(row)
        tokens = self._pick([streams[row].job for row in emitting], logits[emitting]) if emitting else []
        leaving: list[int] = []
        for row, token in zip(emitting, tokens, strict=True):
            stream = streams[row]
            if stream.last_token_at:
                self._metrics.inter_token.observe(now - stream.last_token_at)
            else:  # its prompt ended in this step
                self._metrics.ttft.observe(now - stream.admitted)
            stream.last_token_at = now
            next_tokens[row] = token
            self._touched.append(stream)
            if stream.job.advance(token) or stream.job.cancelled:
                leaving.append(row)
        self._next_tokens = next_tokens
        self._metrics.tokens.inc(len(emitting))
        self._metrics.streams_per_step.observe(len(streams))
        if leaving:
            gone = set(leaving)
            self._keep_decoding([row for row in range(len(streams)) if row not in gone])

    def _keep_decoding(self, rows: Sequence[int]) -> None:
        """Leave only these decode rows (finished, cancelled and failed streams leave at once)."""
        index = np.asarray(rows, dtype=np.int64)
        self._decoding = [self._decoding[i] for i in rows]
        self._states = [np.ascontiguousarray(state[:, index]) for state in self._states]
        self._next_tokens = self._next_tokens[index]

    def _run(self, feeds: dict[str, Array], streams: list[_Stream]) -> dict[str, Array] | None:
        started = time.perf_counter()
        try:
            outputs = self._runner.run_stateful(feeds)
        except Exception as exc:
            # A failed run reaches exactly the streams that were in it.
            logger.error("generation step failed for %d streams of %s: %r", len(streams), self._label, exc)
            for stream in streams:
                self._fail(stream, exc)
            self._prefilling = [s for s in self._prefilling if s not in streams]
            return None
        observer = self._runner.observer
        if observer is not None:
            observer.batch_done(len(streams), [], time.perf_counter() - started)
        return outputs

    def _fail(self, stream: _Stream, error: BaseException) -> None:
        stream.job.fail(error)
        self._touched.append(stream)

    def _wake_touched(self) -> None:
        if not self._touched:
            return
        by_loop: dict[asyncio.AbstractEventLoop, list[Job]] = defaultdict(list)
        for stream in self._touched:
            by_loop[stream.job.loop].append(stream.job)
        self._touched = []
        for loop, jobs in by_loop.items():
            self._wakes.put((loop, jobs))
