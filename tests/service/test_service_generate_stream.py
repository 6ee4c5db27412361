"""A generation stream's text hand-over, token by token, without a model: stop strings are cut and
never leak in pieces, length ends the stream, and sampling is the same alone and in a batch."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from service.tasks.generate_stream import Chunk, GenerationRequest, GenerationStream
from service.tasks.sampling import Sampler, SamplingParams, pick_tokens
from service.tasks.stop_strings import StopMatcher

PIECES = list("abcxyz \n")


def _feed(text: str, stop: tuple[str, ...], max_new_tokens: int = 100) -> list[Chunk]:
    """Advance a stream one character at a time, reading a chunk after every token, as a slow reader would
    see them if it read after each step."""

    async def run() -> list[Chunk]:
        closed: list[GenerationStream] = []
        request = GenerationRequest("a", max_new_tokens, SamplingParams(0.0), stop)
        stream = GenerationStream(np.zeros(1, dtype=np.int64), PIECES, request, asyncio.get_running_loop(),
                                  closed.append)  # fmt: skip
        chunks = []
        for ch in text:
            finished = stream.advance(PIECES.index(ch))
            stream.wake()
            # A chunk is only produced when there is new text to hand out (or the end).
            if stream._events:
                chunks.append(await stream.next_chunk())
            if finished:
                assert closed == [stream] and not stream.cancelled
                break
        return chunks

    return asyncio.run(run())


def test_text_before_a_stop_string_is_sent_and_the_stop_string_never_is() -> None:
    chunks = _feed("xyabxaz abcz", stop=("abc",))
    assert "".join(c.text for c in chunks) == "xyabxaz "
    assert chunks[-1].finish_reason == "stop" and chunks[-1].tokens == len("xyabxaz abc")
    # "ab" could have started "abc": it was held back until the "x" showed it did not.
    sent = ""
    for chunk in chunks:
        sent += chunk.text
        assert "abc" not in sent


def test_the_earliest_of_several_stop_strings_wins() -> None:
    chunks = _feed("xxzab c", stop=("b c", "za"))
    assert "".join(c.text for c in chunks) == "xx" and chunks[-1].finish_reason == "stop"


def test_length_ends_the_stream_and_flushes_held_back_text() -> None:
    chunks = _feed("xyzab", stop=("abc",), max_new_tokens=5)
    assert "".join(c.text for c in chunks) == "xyzab"
    assert chunks[-1].finish_reason == "length" and chunks[-1].tokens == 5


def test_closing_an_unfinished_stream_cancels_it_once() -> None:
    async def run() -> None:
        closed: list[GenerationStream] = []
        request = GenerationRequest("a", 10, SamplingParams(0.0))
        stream = GenerationStream(np.zeros(1, dtype=np.int64), PIECES, request, asyncio.get_running_loop(),
                                  closed.append)  # fmt: skip
        stream.close()
        stream.close()
        assert stream.cancelled and closed == [stream]

    asyncio.run(run())


@pytest.mark.parametrize(
    "params",
    [
        SamplingParams(0.0),
        SamplingParams(0.7, seed=1),
        SamplingParams(1.3, top_k=5, seed=2),
        SamplingParams(0.9, top_p=0.8, seed=3),
    ],
)
def test_a_row_samples_the_same_alone_and_inside_a_batch(params: SamplingParams) -> None:
    rng = np.random.default_rng(0)
    alone, batched = Sampler(params), Sampler(params)
    neighbours = [Sampler(SamplingParams(0.5 + i / 10, seed=100 + i)) for i in range(7)]
    for _ in range(300):
        logits = (rng.standard_normal((8, 65)) * 3).astype(np.float32)
        expected = alone.pick(logits[3])
        assert pick_tokens([*neighbours[:3], batched, *neighbours[3:]], logits)[3] == expected


def test_a_seed_fixes_the_draws_and_temperature_zero_is_argmax() -> None:
    logits = np.random.default_rng(1).standard_normal(65).astype(np.float32)
    first = [Sampler(SamplingParams(1.0, seed=9)).pick(logits) for _ in range(3)]
    assert len(set(first)) == 1
    draws = Sampler(SamplingParams(1.0, seed=9))
    assert len({draws.pick(logits) for _ in range(50)}) > 5
    assert Sampler(SamplingParams(0.0)).pick(logits) == int(np.argmax(logits))


@pytest.mark.parametrize("cut", [{}, {"top_k": 5}, {"top_p": 0.5}])
def test_a_tiny_temperature_is_greedy_not_nan(cut: dict[str, float]) -> None:
    logits = (np.random.default_rng(2).standard_normal(65) * 10).astype(np.float32)
    sampler = Sampler(SamplingParams(1e-300, seed=4, **cut))  # type: ignore[arg-type]
    assert [sampler.pick(logits) for _ in range(20)] == [int(np.argmax(logits))] * 20


def _brute_force(text: str, stops: list[str]) -> tuple[int | None, int]:
    """(start of the first stop string to complete, or None; longest trailing stop prefix) by rescanning."""
    for end in range(1, len(text) + 1):
        starts = [end - len(s) for s in stops if text[:end].endswith(s)]
        if starts:
            return min(starts), 0
    held = max((k for s in stops for k in range(len(s)) if k and text.endswith(s[:k])), default=0)
    return None, held


def test_the_stop_matcher_agrees_with_rescanning_on_repetitive_text() -> None:
    rng = np.random.default_rng(5)
    for _ in range(300):
        stops = ["".join(rng.choice(list("ab"), size=rng.integers(1, 6))) for _ in range(rng.integers(1, 4))]
        text = "".join(rng.choice(list("abc"), size=rng.integers(1, 30)))
        matcher = StopMatcher(stops)
        found = None
        for i, ch in enumerate(text):
            found = matcher.feed(ch)
            if found is not None:
                assert (found, 0) == (_brute_force(text[: i + 1], stops)[0], 0)
                break
        else:
            assert _brute_force(text, stops) == (None, matcher.held_back)
