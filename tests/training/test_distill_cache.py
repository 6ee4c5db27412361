"""training/distill_cache.py: the teacher's logits cached per transfer set, in resumable chunks."""

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from training.distill_cache import cached_logits, transfer_key


class CountingLabeller:
    """A stand-in teacher: logits derived from each sentence, and a count of what it was asked."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        self.seen.extend(texts)
        return np.array([[len(t), -float(len(t.split()))] for t in texts], dtype=np.float32)


TEXTS = [f"sentence {i} " + "w " * (i % 7) for i in range(23)]


def test_logits_come_back_in_order_and_a_second_call_labels_nothing(tmp_path: Path) -> None:
    first = CountingLabeller()
    logits, record = cached_logits(TEXTS, first, tmp_path, chunk=5, threads=2)
    assert logits.shape == (23, 2)
    np.testing.assert_array_equal(logits, CountingLabeller()(TEXTS))
    assert first.seen == TEXTS
    assert (record["chunks"], record["chunks_labelled"], record["chunks_reused"]) == (5, 5, 0)
    assert record["label_threads"] == [2]

    second = CountingLabeller()
    again, record2 = cached_logits(TEXTS, second, tmp_path, chunk=5, threads=1)
    assert second.seen == []
    np.testing.assert_array_equal(again, logits)
    assert (record2["chunks_labelled"], record2["chunks_reused"]) == (0, 5)
    # The total labelling time is the chunks' own, not this call's (which labelled nothing).
    assert record2["label_seconds_total"] == record["label_seconds_total"]
    assert record2["label_threads"] == [2]


def test_a_stopped_run_resumes_at_the_first_missing_chunk(tmp_path: Path) -> None:
    cached_logits(TEXTS, CountingLabeller(), tmp_path, chunk=5, threads=2)
    for index in (2, 4):
        (tmp_path / f"logits-{index:05d}.npy").unlink()
    resumed = CountingLabeller()
    logits, record = cached_logits(TEXTS, resumed, tmp_path, chunk=5, threads=1)
    assert resumed.seen == TEXTS[10:15] + TEXTS[20:23]
    np.testing.assert_array_equal(logits, CountingLabeller()(TEXTS))
    assert record["label_threads"] == [1, 2]


def test_a_chunk_of_the_wrong_size_is_an_error(tmp_path: Path) -> None:
    cached_logits(TEXTS, CountingLabeller(), tmp_path, chunk=5)
    with pytest.raises(ValueError, match="rows, expected"):
        cached_logits(TEXTS, CountingLabeller(), tmp_path, chunk=6)


def test_the_key_changes_with_the_weights_the_config_and_the_sentences(tmp_path: Path) -> None:
    weights = tmp_path / "teacher.pt"
    weights.write_bytes(b"weights")
    base = transfer_key(weights, {"epochs": 1}, ["a b", "c"])
    assert transfer_key(weights, {"epochs": 1}, ["a b", "c"]) == base
    assert transfer_key(weights, {"epochs": 2}, ["a b", "c"]) != base
    assert transfer_key(weights, {"epochs": 1}, ["a", "b c"]) != base
    assert transfer_key(weights, {"epochs": 1}, ["a b", "c", "d"]) != base
    weights.write_bytes(b"other weights")
    assert transfer_key(weights, {"epochs": 1}, ["a b", "c"]) != base
