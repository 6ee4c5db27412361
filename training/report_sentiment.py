"""The sentiment model's report: learning curves, confusion matrix and reliability diagram (test set)."""

from __future__ import annotations

from typing import Any

import numpy as np
from tokenizers import Tokenizer

from training.reports import Section, new_figure
from training.sentiment_pipeline import SST_TEST, onnx_probabilities
from training.sentiment_train import read_tsv

BINS = 10


def _learning_curves(section: Section, history: list[dict[str, float]]) -> None:
    if not history:
        return
    epochs = [h["epoch"] for h in history]
    fig = new_figure()
    left = fig.add_subplot(1, 2, 1)
    left.plot(epochs, [h["train_loss"] for h in history], marker="o", color="#1f4e79")
    left.set(title="training loss", xlabel="epoch", ylabel="cross-entropy")
    right = fig.add_subplot(1, 2, 2)
    right.plot(epochs, [100 * h["dev_accuracy"] for h in history], marker="o", color="#d1495b")
    right.set(title="dev accuracy (model selection)", xlabel="epoch", ylabel="accuracy (%)")
    for ax in (left, right):
        ax.set_xticks(epochs)
    section.figure("learning_curves", fig, "Learning curves: training loss and GLUE dev accuracy per epoch")


def _confusion(section: Section, labels: list[str], truth: np.ndarray, pred: np.ndarray) -> None:
    k = len(labels)
    matrix = np.zeros((k, k), dtype=int)
    for t, p in zip(truth, pred, strict=True):
        matrix[t, p] += 1
    fig = new_figure(4.8, 4.2)
    ax = fig.add_subplot(1, 1, 1)
    ax.imshow(matrix, cmap="Blues")
    for i in range(k):
        for j in range(k):
            share = matrix[i, j] / max(1, matrix[i].sum())
            color = "white" if matrix[i, j] > matrix.max() / 2 else "black"
            ax.text(j, i, f"{matrix[i, j]}\n({share:.1%})", ha="center", va="center", color=color)
    ax.set_xticks(range(k), labels)
    ax.set_yticks(range(k), labels)
    ax.set(xlabel="predicted", ylabel="true", title=f"Confusion matrix (test, n={len(truth)})")
    section.figure(
        "confusion", fig, "Confusion matrix on the labelled SST-2 test set (row shares in brackets)"
    )


def _reliability(section: Section, truth: np.ndarray, probs: np.ndarray) -> float:
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == truth
    low = 1.0 / probs.shape[1]
    edges = np.linspace(low, 1.0, BINS + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, BINS - 1)
    centers, accuracy, counts = [], [], []
    ece = 0.0
    for b in range(BINS):
        mask = which == b
        if mask.any():
            centers.append(confidence[mask].mean())
            accuracy.append(correct[mask].mean())
            counts.append(int(mask.sum()))
            ece += mask.mean() * abs(correct[mask].mean() - confidence[mask].mean())
    fig = new_figure(8, 4)
    left = fig.add_subplot(1, 2, 1)
    left.plot([low, 1], [low, 1], color="grey", linestyle="--", linewidth=1, label="perfect calibration")
    left.plot(centers, accuracy, marker="o", color="#d1495b", label="this model")
    left.set(xlabel="confidence (top probability)", ylabel="accuracy", title=f"Reliability (ECE {ece:.3f})",
             xlim=(low, 1), ylim=(0, 1.02))  # fmt: skip
    left.legend(fontsize=8)
    right = fig.add_subplot(1, 2, 2)
    right.bar(edges[:-1], np.bincount(which, minlength=BINS), width=np.diff(edges), align="edge",
              color="#8aa1b8", edgecolor="white")  # fmt: skip
    right.set(xlabel="confidence", ylabel="texts", title="Confidence histogram")
    section.figure("reliability", fig, "Reliability diagram (calibration) and confidence histogram, test set")
    return float(ece)


def sentiment_report(section: Section, manifest: dict[str, Any]) -> None:
    params, evaluation = manifest["parameters"], manifest["evaluation"]
    labels = list(params["labels"])
    texts, truth = read_tsv(SST_TEST)
    tok = Tokenizer.from_file(str(section.version_dir / params["tokenizer"]))
    probs = onnx_probabilities(section.version_dir / "model.onnx", tok, texts, params["max_tokens"])
    pred = probs.argmax(axis=1)
    accuracy = 100.0 * float((pred == truth).mean())
    section.text(
        "## Accuracy",
        "",
        "| split | n | accuracy (%) |",
        "|---|---|---|",
        *(
            f"| {split} | {evaluation[split]['n']} | {evaluation[split]['accuracy']:.2f} |"
            for split in ("glue_dev", "test_labeled")
            if split in evaluation
        ),
        f"| test_labeled (re-run for this report) | {len(texts)} | {accuracy:.2f} |",
        "",
        "Published anchors on the same test sentences:",
        "",
        "| model | accuracy (%) |",
        "|---|---|",
        *(
            f"| {name} | {value} |"
            for name, value in evaluation.get("published_anchors_test_accuracy", {}).items()
        ),
        "",
        "## Learning curves",
        "",
    )
    _learning_curves(section, manifest["training"].get("history", []))
    section.text("## Errors", "")
    _confusion(section, labels, truth, pred)
    section.text("## Calibration", "")
    ece = _reliability(section, truth, probs)
    section.text(f"Expected calibration error over {BINS} confidence bins: **{ece:.3f}**.", "")
