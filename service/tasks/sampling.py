"""Choosing the next token from one row of logits: greedy, or temperature / top-k / top-p sampling.

Every stream owns its sampler and its ``numpy.random.Generator``, seeded from the request, so the
tokens a stream draws depend only on its own logits and its own seed, never on which other streams
share its decode step. Each row is processed on its own, as a contiguous float64 vector of the same
length whatever the batch size, so vectorised numpy kernels take the same path for a row alone and a
row in a batch of 64 (the batched graph itself returns bitwise-identical rows; see docs/generation.md).
"""

from __future__ import annotations

import secrets
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

    def pick(self, logits: np.ndarray[Any, Any]) -> int:
        """The next token id for one row of logits (shape [V])."""
        params = self.params
        if params.greedy:
            # Ties go to the lowest id, as numpy's argmax does for any batch size.
            return int(np.argmax(logits))
        scaled = logits.astype(np.float64) / params.temperature
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
        index = int(np.searchsorted(cumulative, self._rng.random() * cumulative[-1], side="right"))
        return int(order[min(index, order.size - 1)])
