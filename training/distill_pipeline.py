"""``python -m training sst2-distill``: a BiLSTM distilled from a fine-tuned MiniLM teacher (Tang 2019).

Stages, each logged with its time:

1. the teacher: all-MiniLM-L6-v2 fine-tuned on GLUE train, chosen on GLUE dev
   (``distill_teacher.py``); cached outside ``models/`` because it never ships;
2. the transfer set: the training sentences plus their augmented variants (``distill_augment.py``);
3. the teacher's logits on all of it;
4. the student: the sst2-bilstm architecture and tokenizer, trained on MSE to the teacher's logits
   plus cross-entropy on the gold labels, chosen on GLUE dev; then the usual export, parity, padding
   check, ONNX evaluation and manifest of ``sentiment_pipeline.run_sentiment``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer

from training.distill_augment import (
    STUDENT_MASK,
    TEACHER_MASK,
    AugmentConfig,
    Augmented,
    augment,
    render,
    similar_words,
    vocabulary,
)
from training.distill_cache import cached_logits, transfer_key
from training.distill_teacher import (
    TEACHER_FILE,
    MiniLMClassifier,
    TeacherConfig,
    accuracy,
    encode,
    fine_tune,
    load_teacher,
    minilm_tokenizer,
    save_teacher,
    teacher_logits,
)
from training.models import BiLSTMSentiment
from training.sentiment_pipeline import (
    PUBLISHED_ANCHORS,
    SST_DEV,
    SST_TEST,
    SST_TRAIN,
    DevSplit,
    TrainSplit,
    encode_rows,
    run_sentiment,
)
from training.sentiment_train import SentimentConfig, read_tsv, train_sentiment
from training.text import MINILM_EMBEDDING_KEY, minilm_dir, minilm_vocab, read_safetensor

log = logging.getLogger(__name__)
DEFAULT_CACHE = Path(".cache/sst2-teacher")
ANCHORS = [
    *PUBLISHED_ANCHORS,
    ("BiLSTM distilled from BERT-large (Tang et al. 2019)", 90.7),
]


@dataclass(frozen=True)
class DistillConfig:
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    # Variants drawn per training sentence, and the cap on their number: v1's were what the teacher
    # labels on one core in about ten minutes; --variants and --max-augmented raise them.
    variants_per_sentence: int = 3
    max_augmented: int = 80_000
    gold_weight: float = 0.5
    student: SentimentConfig = field(default_factory=lambda: SentimentConfig(epochs=3, dropout=0.3))


def teacher_for(cfg: TeacherConfig, cache: Path) -> tuple[MiniLMClassifier, dict[str, object]]:
    """The cached teacher when it was trained with ``cfg``; otherwise fine-tune one now and cache it."""
    cached = load_teacher(minilm_dir(), cache)
    if cached is not None and cached[1].get("config") == asdict(cfg):
        log.info("teacher: cached in %s (dev %.4f)", cache, cached[1]["dev_accuracy"])
        return cached
    log.info("teacher: fine-tuning all-MiniLM-L6-v2 on GLUE train (%d epoch(s))", cfg.epochs)
    model, meta = fine_tune(minilm_dir(), read_tsv(SST_TRAIN), read_tsv(SST_DEV), cfg)
    save_teacher(model, meta, cache)
    return model, meta


@dataclass(frozen=True)
class TransferSet:
    """The augmented sentences, the teacher's logits on originals + augmented, and what it cost."""

    aug: Augmented
    soft: np.ndarray
    teacher_meta: dict[str, object]
    teacher_scores: dict[str, float]
    record: dict[str, object]


def transfer_set(cfg: DistillConfig, cache: Path, texts: list[str]) -> TransferSet:
    """Teacher (cached or trained), augmentation, then the teacher's logits, cached per transfer set."""
    teacher, meta = teacher_for(cfg.teacher, cache)
    mtok = minilm_tokenizer(minilm_dir(), cfg.teacher.max_tokens)
    scores = {
        split: accuracy(teacher_logits(teacher, encode(mtok, t)), y)
        for split, (t, y) in {"glue_dev": read_tsv(SST_DEV), "test_labeled": read_tsv(SST_TEST)}.items()
    }
    log.info("teacher accuracy: dev %.4f, test %.4f", scores["glue_dev"], scores["test_labeled"])

    start = time.monotonic()
    full = minilm_vocab(minilm_dir())
    table = read_safetensor(minilm_dir() / "model.safetensors", MINILM_EMBEDDING_KEY)
    neighbours = similar_words(vocabulary(texts), full, table, cfg.augment.neighbours)
    aug = augment(texts, neighbours, cfg.variants_per_sentence, cfg.max_augmented, cfg.augment)
    augment_seconds = time.monotonic() - start
    log.info("transfer set: %d + %d augmented (%.0fs)", len(texts), len(aug.words), augment_seconds)

    teacher_texts = texts + render(aug, TEACHER_MASK)
    key = transfer_key(cache / TEACHER_FILE, meta["config"], teacher_texts)
    folder = cache / "transfer" / key[:16]
    log.info("teacher logits of %d sentences: cache %s", len(teacher_texts), folder)
    soft, work = cached_logits(
        teacher_texts,
        lambda chunk: teacher_logits(teacher, encode(mtok, chunk)),
        folder,
        threads=torch.get_num_threads(),
    )
    log.info("teacher logits ready: %s", work)
    record = {"augment_seconds": round(augment_seconds, 1), "cache_key": key, **work}
    return TransferSet(aug, soft, meta, scores, record)


class DistillTrainer:
    """``run_sentiment``'s trainer: builds the transfer set, labels it with the teacher, trains."""

    def __init__(self, cfg: DistillConfig, cache: Path) -> None:
        self.cfg = cfg
        self.cache = cache

    def __call__(
        self,
        tok: Tokenizer,
        train: TrainSplit,
        dev: DevSplit,
        vocab_size: int,
        cfg: SentimentConfig,
        embeddings: np.ndarray | None,
    ) -> tuple[BiLSTMSentiment, dict[str, object]]:
        texts, labels, rows = train
        ts = transfer_set(self.cfg, self.cache, texts)
        aug, soft, meta, scores = ts.aug, ts.soft, ts.teacher_meta, ts.teacher_scores

        student_rows = rows + encode_rows(tok, render(aug, STUDENT_MASK), cfg.max_tokens)
        student_labels = np.concatenate([labels, np.full(len(aug.words), -1, dtype=np.int64)])
        model, report = train_sentiment(
            student_rows,
            student_labels,
            dev[0],
            dev[1],
            vocab_size,
            cfg,
            embeddings,
            teacher_logits=soft,
            gold_weight=self.cfg.gold_weight,
        )
        agree = float((soft[: len(texts)].argmax(1) == labels).mean())
        report["distillation"] = {
            "method": "Tang et al. 2019: MSE on teacher logits + gold-label cross-entropy",
            "gold_weight": self.cfg.gold_weight,
            "teacher": {
                **{k: v for k, v in meta.items() if k != "history"},
                "accuracy": scores,
                "train_agreement_with_gold": agree,
                "ships": False,
            },
            "transfer_set": {
                "originals": len(texts),
                "augmented": len(aug.words),
                "augmentation": asdict(self.cfg.augment),
                "variants_per_sentence": self.cfg.variants_per_sentence,
                "max_augmented": self.cfg.max_augmented,
                "swap": (
                    "nearest neighbours among training words in MiniLM's input embeddings "
                    "(no English POS tagger ships its model in a PyPI wheel)"
                ),
                # label_seconds: every chunk's labelling time, also when an earlier run
                # labelled (and cached) some or all of them.
                "augment_seconds": ts.record["augment_seconds"],
                "label_seconds": ts.record["label_seconds_total"],
                "labelling": ts.record,
            },
            "torch_threads": torch.get_num_threads(),
        }
        # Every run of this pipeline scores the test set at its end: one more look at it.
        from training.distill_pair import EARLIER_TEST_LOOKS  # here: distill_pair imports this module

        report["earlier_test_looks"] = EARLIER_TEST_LOOKS
        report["configurations_scored_on_test"] = len(EARLIER_TEST_LOOKS) + 1
        return model, report


def run_distill(
    out: Path, cfg: DistillConfig, name: str, cache: Path = DEFAULT_CACHE, train_limit: int | None = None
) -> dict[str, object]:
    """``train_limit``: a seeded subset of the training sentences, for quick experiments only."""
    return run_sentiment(
        out,
        cfg.student,
        name,
        train_limit,
        trainer=DistillTrainer(cfg, cache),
        description=(
            "BiLSTM sentiment classifier (SST-2, binary) distilled from a fine-tuned all-MiniLM-L6-v2 "
            "teacher; returns softmax probabilities."
        ),
        anchors=ANCHORS,
    )


def label_only(cfg: DistillConfig, cache: Path = DEFAULT_CACHE) -> dict[str, object]:
    """Teacher, transfer set and its cached logits, no student: no test look, nothing in ``models/``.

    Lets the labelling run on more threads than the student's training, or ahead of it.
    """
    return transfer_set(cfg, cache, read_tsv(SST_TRAIN)[0]).record


def config_from_args(
    epochs: int | None,
    seed: int | None,
    augment_seed: int | None = None,
    variants: int | None = None,
    max_augmented: int | None = None,
    teacher_epochs: int | None = None,
) -> DistillConfig:
    cfg = DistillConfig()
    if teacher_epochs is not None:
        cfg = replace(cfg, teacher=replace(cfg.teacher, epochs=teacher_epochs))
    if variants is not None:
        cfg = replace(cfg, variants_per_sentence=variants)
    if max_augmented is not None:
        cfg = replace(cfg, max_augmented=max_augmented)
    if augment_seed is not None:
        cfg = replace(cfg, augment=replace(cfg.augment, seed=augment_seed))
    if epochs is not None:
        cfg = replace(cfg, student=replace(cfg.student, epochs=epochs))
    if seed is not None:
        cfg = replace(cfg, student=replace(cfg.student, seed=seed))
    return cfg
