"""The transfer set: Tang et al. (2019)'s augmentation of the training sentences, for distillation.

Each synthetic sentence starts from a training sentence, split on spaces (GLUE SST-2 is already
tokenised that way). Every word, independently:

* with ``p_mask`` becomes a mask: ``[MASK]`` for the teacher, a character that the student's
  vocabulary does not hold (so it becomes its ``[UNK]``, as Tang et al. did);
* otherwise, with ``p_swap``, is swapped for a word of similar use. Tang et al. swap within the
  part of speech given by a tagger. No English tagger ships its model inside a PyPI wheel (NLTK and
  spaCy download theirs; the spaCy models on PyPI are unofficial mirrors), so the swap draws from
  the word's nearest neighbours, by cosine, among the training vocabulary in all-MiniLM-L6-v2's
  input-embedding table. Those neighbours mostly share the word's part of speech ("great" ->
  "wonderful", "terrible"); a word MiniLM splits into pieces is left as it is.

Then, with ``p_ngram``, only a random n-gram (n from 1 to 5) of the result is kept. Duplicates,
and copies of a sentence that is already in the training set, are dropped: the teacher labels
only new inputs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

TEACHER_MASK = "[MASK]"
# Outside the student's vocabulary, so its tokenizer reads it as one [UNK] (tests check this).
STUDENT_MASK = "\u2603"


@dataclass(frozen=True)
class AugmentConfig:
    p_mask: float = 0.1
    p_swap: float = 0.1
    p_ngram: float = 0.25
    max_ngram: int = 5
    neighbours: int = 10
    seed: int = 1234


@dataclass(frozen=True)
class Augmented:
    """Word lists with masks still marked as ``None``; render them per model with ``render``."""

    words: list[list[str | None]]


def similar_words(
    words: Sequence[str], full_vocab: dict[str, int], table: np.ndarray, k: int
) -> dict[str, list[str]]:
    """For every word that is one MiniLM piece, its ``k`` nearest such words (cosine, itself excluded)."""
    known = [w for w in words if w in full_vocab and w.isalpha()]
    if len(known) <= k:
        return {}
    emb = table[[full_vocab[w] for w in known]].astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True).clip(1e-8)
    out: dict[str, list[str]] = {}
    for s in range(0, len(known), 1024):
        sims = emb[s : s + 1024] @ emb.T
        for i in range(sims.shape[0]):
            sims[i, s + i] = -np.inf
        top = np.argpartition(-sims, k, axis=1)[:, :k]
        for i, row in enumerate(top):
            out[known[s + i]] = [known[j] for j in row]
    return out


def vocabulary(texts: Sequence[str], min_count: int = 2) -> list[str]:
    counts = Counter(w for t in texts for w in t.split())
    return sorted(w for w, c in counts.items() if c >= min_count)


def augment(
    texts: Sequence[str],
    neighbours: dict[str, list[str]],
    per_sentence: int,
    limit: int,
    cfg: AugmentConfig,
) -> Augmented:
    """Up to ``per_sentence`` variants of each text, at most ``limit`` in all, distinct and new."""
    rng = np.random.default_rng(cfg.seed)
    seen = {" ".join(t.split()) for t in texts}
    out: list[list[str | None]] = []
    order = rng.permutation(len(texts))
    for _ in range(per_sentence):
        for i in order:
            words = texts[i].split()
            if not words:
                continue
            new = _variant(words, neighbours, rng, cfg)
            key = " ".join("\0" if w is None else w for w in new)
            if key in seen:
                continue
            seen.add(key)
            out.append(new)
            if len(out) >= limit:
                return Augmented(out)
    return Augmented(out)


def _variant(
    words: list[str], neighbours: dict[str, list[str]], rng: np.random.Generator, cfg: AugmentConfig
) -> list[str | None]:
    draws = rng.random((len(words), 2))
    new: list[str | None] = []
    for w, (a, b) in zip(words, draws, strict=True):
        if a < cfg.p_mask:
            new.append(None)
        elif b < cfg.p_swap and w in neighbours:
            new.append(neighbours[w][int(rng.integers(len(neighbours[w])))])
        else:
            new.append(w)
    if rng.random() < cfg.p_ngram:
        n = int(rng.integers(1, cfg.max_ngram + 1))
        if n < len(new):
            start = int(rng.integers(0, len(new) - n + 1))
            new = new[start : start + n]
    return new


def render(aug: Augmented, mask: str) -> list[str]:
    return [" ".join(mask if w is None else w for w in words) for words in aug.words]
