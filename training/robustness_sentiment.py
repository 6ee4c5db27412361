"""Out-of-domain sentiment check: committed SST-2 classifiers on human-rated sentences that are not SST.

The sets in ``training/data/ood/sentiment/`` (see its README) are product-review sentences and tweets
rated by at least 20 people each. Texts go through each version's own ``tokenizer.json`` and the
manifest's truncation/padding rule (``training.text.encode_padded``), exactly as the service does.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from training.robustness_forecast import repo_relative
from training.sentiment_pipeline import OUTPUT_NAME, REPO_ROOT
from training.sentiment_train import read_tsv
from training.text import encode_padded

OOD_SENTIMENT = REPO_ROOT / "training/data/ood/sentiment"
SETS = ("amazon_reviews", "tweets")
BATCH = 128


def onnx_labels(version_dir: Path, texts: list[str], threads: int) -> np.ndarray:
    """argmax of the committed graph's probabilities, on ``threads`` intra-op threads."""
    manifest = json.loads((version_dir / "model.json").read_text())
    params = manifest["parameters"]
    tok = Tokenizer.from_file(str(version_dir / params["tokenizer"]))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(version_dir / "model.onnx"), opts, providers=["CPUExecutionProvider"])
    out = []
    for s in range(0, len(texts), BATCH):
        ids, lengths = encode_padded(tok, texts[s : s + BATCH], params["max_tokens"])
        out.append(sess.run([OUTPUT_NAME], {"input_ids": ids, "lengths": lengths})[0].argmax(axis=1))
    return np.concatenate(out)


def sign_test_p(wins: int, losses: int) -> float:
    """Exact two-sided sign test (McNemar's exact test) on the sentences only one model gets right.

    Why: two accuracies on the same sentences differ by chance too; this says how surprising the split
    of the discordant sentences would be if both models were equally good.
    """
    n = wins + losses
    if n == 0:
        return 1.0
    k = min(wins, losses)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return float(min(1.0, 2 * tail))


def evaluate(
    models: dict[str, Path],
    data_dir: Path = OOD_SENTIMENT,
    threads: int = 1,
    max_sentences: int | None = None,
) -> dict[str, Any]:
    """Accuracy of each labelled version folder on every OOD set, plus its stored SST-2 test accuracy."""
    sets: dict[str, Any] = {}
    correct: dict[str, dict[str, np.ndarray]] = {}
    for name in SETS:
        texts, truth = read_tsv(data_dir / f"{name}.tsv")
        texts, truth = texts[:max_sentences], truth[:max_sentences]
        correct[name] = {label: onnx_labels(d, texts, threads) == truth for label, d in models.items()}
        sets[name] = {
            "n": len(texts),
            "positive": int(truth.sum()),
            "majority_class_accuracy": round(100.0 * max(truth.mean(), 1 - truth.mean()), 2),
            "accuracy": {label: round(100.0 * float(c.mean()), 2) for label, c in correct[name].items()},
        }
    sst = {
        label: float(json.loads((d / "model.json").read_text())["evaluation"]["test_labeled"]["accuracy"])
        for label, d in models.items()
    }
    return {
        "data": repo_relative(data_dir),
        "models": {label: repo_relative(d) for label, d in models.items()},
        "sst2_test_accuracy_from_manifest": sst,
        "sets": sets,
        "correct": correct,
    }


def paired(correct: dict[str, np.ndarray], base: str, candidate: str) -> dict[str, float]:
    """Sentences only the candidate gets right vs only the base gets right, and the sign test's p."""
    wins = int((correct[candidate] & ~correct[base]).sum())
    losses = int((correct[base] & ~correct[candidate]).sum())
    return {"candidate_only": wins, "base_only": losses, "p_two_sided": sign_test_p(wins, losses)}
