"""The distillation transfer set (training/distill_augment.py) on the real SST-2 sentences and tokenizers."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer

from training.distill_augment import (
    STUDENT_MASK,
    TEACHER_MASK,
    AugmentConfig,
    augment,
    render,
    similar_words,
    vocabulary,
)
from training.distill_teacher import minilm_tokenizer
from training.sentiment_pipeline import SST_TRAIN
from training.sentiment_train import read_tsv
from training.text import MINILM_EMBEDDING_KEY, UNK_ID, minilm_dir, minilm_vocab, read_safetensor

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return read_tsv(SST_TRAIN)[0][:3000]


@pytest.fixture(scope="module")
def neighbours(texts: list[str]) -> dict[str, list[str]]:
    table = read_safetensor(minilm_dir() / "model.safetensors", MINILM_EMBEDDING_KEY)
    return similar_words(vocabulary(texts), minilm_vocab(minilm_dir()), table, 5)


def test_masks_are_one_unknown_for_the_student_and_mask_for_the_teacher():
    for version in ("sst2-bilstm/1", "sst2-distilled/1"):
        tok = Tokenizer.from_file(str(REPO / "models" / version / "tokenizer.json"))
        assert tok.encode(f"a good {STUDENT_MASK} film").ids[2] == UNK_ID
        assert len(tok.encode(f"a good {STUDENT_MASK} film").ids) == 4
    teacher = minilm_tokenizer(minilm_dir(), 64)
    enc = teacher.encode(f"a good {TEACHER_MASK} film")
    assert enc.tokens[1:-1] == ["a", "good", "[MASK]", "film"]


def test_neighbours_are_other_known_words(neighbours: dict[str, list[str]]):
    assert len(neighbours) > 500
    for word, near in neighbours.items():
        assert len(near) == 5 and word not in near and all(w.isalpha() for w in near)
    # Embedding neighbours of a sentiment word are words of the same kind, not random ones.
    assert {"excellent", "wonderful", "terrific"} & set(neighbours["great"])


def test_variants_are_new_distinct_and_reproducible(texts: list[str], neighbours: dict[str, list[str]]):
    cfg = AugmentConfig(seed=7)
    first = augment(texts, neighbours, 3, 5000, cfg)
    assert len(first.words) == 5000
    rendered = render(first, TEACHER_MASK)
    assert len(set(rendered)) == len(rendered)
    originals = {" ".join(t.split()) for t in texts}
    assert not originals & set(render(first, STUDENT_MASK))
    assert augment(texts, neighbours, 3, 5000, cfg).words == first.words
    assert augment(texts, neighbours, 3, 5000, replace(cfg, seed=8)).words != first.words


def test_probabilities_drive_each_operation(texts: list[str], neighbours: dict[str, list[str]]):
    only_mask = augment(texts, neighbours, 1, 10_000, AugmentConfig(p_mask=1.0, p_swap=0.0, p_ngram=0.0))
    assert all(all(w is None for w in v) for v in only_mask.words)
    ngram = augment(texts, neighbours, 1, 10_000, AugmentConfig(p_mask=0.0, p_swap=0.0, p_ngram=1.0))
    assert max(len(v) for v in ngram.words) <= 5
    swap = augment(texts, neighbours, 1, 10_000, AugmentConfig(p_mask=0.0, p_swap=1.0, p_ngram=0.0))
    lengths = [len(v) for v in swap.words]
    swapped = [w for v in swap.words for w in v if w is not None]
    # Every word with neighbours was swapped, so the variant keeps the length and changes words.
    assert np.mean(lengths) > 5 and all(isinstance(w, str) for w in swapped)
    by_source = dict(zip([" ".join(t.split()) for t in texts], texts, strict=True))
    assert not set(render(swap, "")) & set(by_source)
