"""Choosing the next token from one row of logits: greedy, or temperature / top-k / top-p sampling.

Every stream owns its sampler and its ``numpy.random.Generator``, seeded from the request, so the
tokens a stream draws depend only on its own logits and its own seed, never on which other streams
share its decode step. Each row is processed on its own, as a contiguous float64 vector of the same
length whatever the batch size, so vectorised numpy kernels take the same path for a row alone and a
row in a batch of 64 (the batched graph itself returns bitwise-identical rows; see docs/generation.md).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

# The largest seed a request may send: numpy's Generator takes any non-negative int, and 64 bits is
# what OpenAI-style clients send.
MAX_SEED = 2**64 - 1


@dataclass(frozen=True)
class SamplingParams:
    """temperature 0 = greedy (top_k and top_p are then irrelevant); top_k None = no cut."""

    temperature: float = 1.0
    top_k: int | None = None
    top_p: float = 1.0
    seed: int | None = None

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


class Sampler:
    def __init__(self, params: SamplingParams) -> None:
        self.params = params
        # Without a seed the draw is still per stream, from fresh OS entropy.
        seed = params.seed if params.seed is not None else secrets.randbits(64)
        self._rng = np.random.default_rng(seed)

    @property
    def plain(self) -> bool:
        """Temperature sampling over the whole vocabulary (no top-k / top-p cut)."""
        return not self.params.greedy and self.params.top_k is None and self.params.top_p >= 1.0

    def draw(self) -> float:
        return float(self._rng.random())

    def pick(self, logits: np.ndarray[Any, Any]) -> int:
        """The next token id for one row of logits (shape [V])."""
        return pick_tokens([self], logits[None, :])[0]

    def _pick_cut(self, logits: np.ndarray[Any, Any]) -> int:
        """Sampling after a top-k and/or top-p cut, one row at a time."""
        params = self.params
        raw = logits.astype(np.float64)
        # Shift before scaling: a tiny temperature then sends the others to -inf, never inf - inf = NaN.
        scaled = (raw - raw.max()) / params.temperature
        # Candidates in order of decreasing logit, ties by lower id (stable), so the cut is deterministic.
        order = np.argsort(-scaled, kind="stable")
        if params.top_k is not None and params.top_k < order.size:
            order = order[: params.top_k]
        kept = scaled[order]
        probs = np.exp(kept - kept[0])
        probs /= probs.sum()
        if params.top_p < 1.0:
            # The smallest prefix whose mass reaches top_p (at least one token).
            cumulative = np.cumsum(probs)
            cut = int(np.searchsorted(cumulative, params.top_p, side="left")) + 1
            order, probs = order[:cut], probs[:cut]
            probs = probs / probs.sum()
        cumulative = np.cumsum(probs)
        # One uniform draw per token: the generator advances identically whatever the logits were.
        index = int(np.searchsorted(cumulative, self.draw() * cumulative[-1], side="right"))
        return int(order[min(index, order.size - 1)])


def pick_tokens(samplers: Sequence[Sampler], logits: np.ndarray[Any, Any]) -> list[int]:
    """The next token of every row of a decode step (logits [B, V]), each with its own sampler.

    Greedy and plain-temperature rows are computed together: every operation here is elementwise or
    runs along one row in a fixed order (max, cumsum), so a row gets exactly the result it would get
    alone. Rows with a top-k / top-p cut are sampled one by one.
    """
    tokens = [0] * len(samplers)
    greedy = [i for i, s in enumerate(samplers) if s.params.greedy]
    plain = [i for i, s in enumerate(samplers) if s.plain]
    if greedy:
        # Ties go to the lowest id, as argmax does for any batch size.
        for i, token in zip(greedy, np.argmax(logits[greedy], axis=1).tolist(), strict=True):
            tokens[i] = token
    if plain:
        temperatures = np.asarray([samplers[i].params.temperature for i in plain], dtype=np.float64)
        raw = logits[plain].astype(np.float64)
        # Shift before scaling (see _pick_cut): the best logit becomes exactly 0, so its weight is 1.
        weights = np.exp((raw - raw.max(axis=1, keepdims=True)) / temperatures[:, None])
        cumulative = np.cumsum(weights, axis=1)
        # Inverse CDF over ids in vocabulary order: the number of cumulative weights <= the draw.
        targets = np.asarray([samplers[i].draw() for i in plain]) * cumulative[:, -1]
        chosen = np.minimum((cumulative <= targets[:, None]).sum(axis=1), logits.shape[1] - 1)
        for i, token in zip(plain, chosen.tolist(), strict=True):
            tokens[i] = token
    for i, sampler in enumerate(samplers):
        if not sampler.params.greedy and not sampler.plain:
            tokens[i] = sampler._pick_cut(logits[i])
    return tokens
