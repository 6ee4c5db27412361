"""Per task, turn what a handler observed (its model's inputs and outputs) into feature rows.

``observe`` on the hot path only queues the arrays a request already built; ``extract`` runs later, off
the request path, on everything queued since the last refresh at once, so numpy amortises its per-call
cost over many requests.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from service.drift import features

FloatArray = np.ndarray[Any, np.dtype[np.float64]]
Observed = tuple[Any, Any]
# Largest float64 slice of forecast contexts featurized at once: below glibc's mmap threshold (pinned
# at 1 MiB, service/runtime/memory.py), so temporaries reuse heap memory instead of raising the peak.
CHUNK_BYTES = 256 * 1024


class Extractor(Protocol):
    names: tuple[str, ...]

    def extract(self, observed: Sequence[Observed]) -> dict[str, FloatArray]: ...


def _columns(parts: list[dict[str, FloatArray]], names: Sequence[str]) -> dict[str, FloatArray]:
    return {name: np.concatenate([p[name] for p in parts]) if parts else np.zeros(0) for name in names}


class ForecastExtractor:
    """Observed: (contexts [B, T] as fed to the graph, quantiles [B, horizon, Q])."""

    names: tuple[str, ...] = ("level", "cv", "seasonality", "zeros", "length", "interval_width")

    def __init__(
        self, season_length: int, low_index: int, high_index: int, chunk_bytes: int = CHUNK_BYTES
    ) -> None:
        self._season = season_length
        self._low = low_index
        self._high = high_index
        self._chunk_bytes = chunk_bytes

    @classmethod
    def from_parameters(cls, p: Mapping[str, Any]) -> ForecastExtractor:
        return cls(int(p["season_length"]), int(p["interval_low_index"]), int(p["interval_high_index"]))

    def extract(self, observed: Sequence[Observed]) -> dict[str, FloatArray]:
        # One stack per distinct context length (usually one: clients send full histories).
        by_length: dict[int, list[Observed]] = defaultdict(list)
        for rows, out in observed:
            by_length[rows.shape[1]].append((rows, out))
        parts = []
        for length, group in by_length.items():
            rows = np.concatenate([r for r, _ in group])
            out = np.concatenate([o for _, o in group])
            # Features are per row, so a slice at a time gives the same values. Whole, a refresh's
            # 1,000 rows made float64 temporaries of 2.7 MB each, mapped and unmapped by malloc: an
            # 11 MB spike in the worker's peak RSS every refresh (32-series traffic).
            step = max(1, self._chunk_bytes // (8 * max(1, length)))
            for start in range(0, rows.shape[0], step):
                part, part_out = rows[start : start + step], out[start : start + step]
                parts.append({
                    **features.forecast_inputs(part, self._season),
                    **features.forecast_outputs(part, part_out, self._low, self._high),
                })  # fmt: skip
        return _columns(parts, self.names)


class SentimentExtractor:
    """Observed: ((texts, padded ids [B, W], token counts before cutting), probabilities [B, labels])."""

    names: tuple[str, ...] = ("tokens", "unk_share", "non_ascii_share", "label")

    def __init__(self, unk_id: int, max_tokens: int) -> None:
        self._unk_id = unk_id
        self._max_tokens = max_tokens

    @classmethod
    def from_parameters(cls, p: Mapping[str, Any]) -> SentimentExtractor:
        return cls(int(p["unk_id"]), int(p["max_tokens"]))

    def extract(self, observed: Sequence[Observed]) -> dict[str, FloatArray]:
        if not observed:
            return _columns([], self.names)
        texts = [t for (batch, _, _), _ in observed for t in batch]
        counts = [c for (_, _, batch), _ in observed for c in batch]
        # Requests pad to different widths; flatten every row and count [UNK]s per row in one reduceat.
        flat = np.concatenate([ids.ravel() for (_, ids, _), _ in observed])
        widths = np.repeat(
            [ids.shape[1] for (_, ids, _), _ in observed], [ids.shape[0] for (_, ids, _), _ in observed]
        )
        starts = np.concatenate(([0], np.cumsum(widths)[:-1]))
        unk = np.add.reduceat((flat == self._unk_id).astype(np.int64), starts)
        tokens = np.asarray(counts, dtype=np.float64)
        kept = np.minimum(tokens, float(self._max_tokens))
        probs = np.concatenate([p for _, p in observed])
        return {
            "tokens": tokens,
            "unk_share": np.where(kept > 0, unk / np.maximum(kept, 1.0), 0.0),
            "non_ascii_share": features.non_ascii_share(texts),
            **features.predicted_label(probs),
        }


class ClassifyExtractor:
    """Observed: (sequences [B, T, F] as fed to the graph, probabilities [B, labels])."""

    names: tuple[str, ...] = ("value_mean", "label")

    @classmethod
    def from_parameters(cls, p: Mapping[str, Any]) -> ClassifyExtractor:
        return cls()

    def extract(self, observed: Sequence[Observed]) -> dict[str, FloatArray]:
        if not observed:
            return _columns([], self.names)
        # Mean per sequence, request by request (sequence lengths may differ between requests).
        means = np.concatenate([np.asarray(x, dtype=np.float64).mean(axis=(1, 2)) for x, _ in observed])
        probs = np.concatenate([p for _, p in observed])
        return {"value_mean": means, **features.predicted_label(probs)}


class GenerateExtractor:
    """Observed: ([[prompt characters, 1 if refused for characters outside the vocabulary else 0]], None)."""

    names: tuple[str, ...] = ("prompt_chars", "oov_rejected")

    @classmethod
    def from_parameters(cls, p: Mapping[str, Any]) -> GenerateExtractor:
        return cls()

    def extract(self, observed: Sequence[Observed]) -> dict[str, FloatArray]:
        if not observed:
            return _columns([], self.names)
        rows = np.concatenate([np.asarray(x, dtype=np.float64).reshape(-1, 2) for x, _ in observed])
        return {"prompt_chars": rows[:, 0], "oov_rejected": rows[:, 1]}


EXTRACTORS: dict[str, Any] = {
    "forecast": ForecastExtractor.from_parameters,
    "sentiment": SentimentExtractor.from_parameters,
    "classify": ClassifyExtractor.from_parameters,
    "generate": GenerateExtractor.from_parameters,
}
EXTRACTOR_FEATURES: dict[str, tuple[str, ...]] = {
    "forecast": ForecastExtractor.names,
    "sentiment": SentimentExtractor.names,
    "classify": ClassifyExtractor.names,
    "generate": GenerateExtractor.names,
}
