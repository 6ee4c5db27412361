"""Stop strings found in text that arrives a piece at a time (Knuth-Morris-Pratt, one automaton each).

A stream asks two things after every token: did a stop string just complete (and where does it start),
and how many trailing characters could still turn into one (those are held back, never sent). Rescanning
the text for every stop-string prefix would cost O(len(stop)^2) per token and stop string, which a hostile
request (16 stop strings of 256 identical characters) turns into milliseconds per token for every stream
of the model; the automata answer both in amortized O(1) per character and stop string.
"""

from __future__ import annotations

from collections.abc import Sequence


def _failure(pattern: str) -> list[int]:
    """fail[i] = length of the longest proper prefix of pattern[: i + 1] that is also its suffix."""
    fail = [0] * len(pattern)
    k = 0
    for i in range(1, len(pattern)):
        while k and pattern[i] != pattern[k]:
            k = fail[k - 1]
        if pattern[i] == pattern[k]:
            k += 1
        fail[i] = k
    return fail


class StopMatcher:
    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = list(stops)
        self._fail = [_failure(stop) for stop in self._stops]
        # Per stop string: how many of its first characters the text currently ends with.
        self._matched = [0] * len(self._stops)
        self._length = 0

    def feed(self, piece: str) -> int | None:
        """Take the next characters; the start (in all text fed) of the first stop string they complete.

        When several complete at the same character, the one starting earliest wins.
        """
        for char in piece:
            self._length += 1
            found: int | None = None
            for i, stop in enumerate(self._stops):
                k = self._matched[i]
                while k and stop[k] != char:
                    k = self._fail[i][k - 1]
                if stop[k] == char:
                    k += 1
                if k == len(stop):
                    start = self._length - len(stop)
                    found = start if found is None else min(found, start)
                    k = self._fail[i][k - 1]
                self._matched[i] = k
            if found is not None:
                return found
        return None

    @property
    def held_back(self) -> int:
        """Trailing characters that are the start of some stop string (so they are not sent yet)."""
        return max(self._matched, default=0)
