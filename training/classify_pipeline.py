"""``python -m training classify``: the MNIST row-LSTM: train, export, parity, evaluate with ORT, manifest."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from training.classify_train import ClassifyConfig, predict_proba, train_classifier
from training.export import export_onnx, ort_session, parity
from training.manifest import data_provenance, library_versions, tensor_spec, write_manifest
from training.mnist_data import ALL_FILES, REPO_ROOT, MnistSplits, load_mnist

log = logging.getLogger(__name__)
LABELS = [str(d) for d in range(10)]
INPUT_NAME = "sequences"
OUTPUT_NAME = "probabilities"
# Test accuracy (%) of recurrent nets on MNIST read as a sequence. Pixel-by-pixel (784 steps) is a
# much harder setting than our 28 rows, so these are lower bounds on what a row LSTM should reach.
PUBLISHED_ANCHORS = {
    "IRNN, pixel-by-pixel (Le, Jaitly & Hinton 2015, arXiv:1504.00941)": 97.0,
    "LSTM, pixel-by-pixel (Arjovsky, Shah & Bengio 2016, uRNN, arXiv:1511.06464)": 98.2,
    "LSTM, pixel-by-pixel (Cooijmans et al. 2017, recurrent batch norm, arXiv:1603.09025)": 98.9,
    "BN-LSTM, pixel-by-pixel (Cooijmans et al. 2017)": 99.0,
}
ANCHORS_NOTE = (
    "figures as recalled from the papers' tables; not re-read in this environment, check against the PDFs "
    "before quoting"
)


def onnx_probabilities(onnx_path: Path, images: np.ndarray, batch: int = 500) -> np.ndarray:
    """What a client of the served graph computes: raw 0-255 values as FP32 in, probabilities out."""
    sess = ort_session(onnx_path)
    out = [
        sess.run([OUTPUT_NAME], {INPUT_NAME: images[s : s + batch].astype(np.float32)})[0]
        for s in range(0, len(images), batch)
    ]
    return np.concatenate(out)


def accuracy(pred: np.ndarray, labels: np.ndarray) -> dict[str, object]:
    correct = int((pred == labels).sum())
    return {"n": len(labels), "correct": correct, "accuracy": round(100.0 * correct / len(labels), 2)}


def evaluate_onnx(version_dir: Path, data: MnistSplits) -> dict[str, object]:
    path = version_dir / "model.onnx"
    return {
        "test": accuracy(onnx_probabilities(path, data.test_x).argmax(1), data.test_y),
        "validation": accuracy(onnx_probabilities(path, data.valid_x).argmax(1), data.valid_y),
    }


def nearest_centroid(data: MnistSplits) -> float:
    x = data.train_x.reshape(len(data.train_x), -1).astype(np.float64) / 255.0
    centroids = np.stack([x[data.train_y == k].mean(0) for k in range(10)])
    t = data.test_x.reshape(len(data.test_x), -1).astype(np.float64) / 255.0
    dist = (t**2).sum(1, keepdims=True) - 2 * t @ centroids.T + (centroids**2).sum(1)
    return round(100.0 * float((dist.argmin(1) == data.test_y).mean()), 2)


def logistic_regression(data: MnistSplits, seed: int, iterations: int = 100) -> float:
    """Multinomial logistic regression on the 784 scaled pixels (L-BFGS, small L2)."""
    torch.manual_seed(seed)
    x = torch.from_numpy(data.train_x.reshape(len(data.train_x), -1).astype(np.float32) / 255.0)
    y = torch.from_numpy(data.train_y)
    lin = torch.nn.Linear(784, 10)
    opt = torch.optim.LBFGS(lin.parameters(), max_iter=iterations, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(lin(x), y) + 1e-4 * lin.weight.pow(2).sum()
        loss.backward()  # type: ignore[no-untyped-call]
        return loss

    opt.step(closure)  # type: ignore[no-untyped-call]
    with torch.no_grad():
        t = torch.from_numpy(data.test_x.reshape(len(data.test_x), -1).astype(np.float32) / 255.0)
        pred = lin(t).argmax(1).numpy()
    return round(100.0 * float((pred == data.test_y).mean()), 2)


def parity_cases(data: MnistSplits) -> list[tuple[str, dict[str, np.ndarray]]]:
    cases = [(f"test_b{b}", {INPUT_NAME: data.test_x[:b].astype(np.float32)}) for b in (1, 7, 64, 500)]
    rng = np.random.default_rng(0)
    noise = rng.uniform(0.0, 255.0, size=(16, 28, 28)).astype(np.float32)
    cases.append(("uniform_noise_b16", {INPUT_NAME: noise}))
    return cases


def run_classify(out: Path, cfg: ClassifyConfig, name: str) -> dict[str, object]:
    pipeline_start = time.monotonic()
    out.mkdir(parents=True, exist_ok=True)
    data = load_mnist()
    model, report = train_classifier(data, cfg)
    torch_test = float(
        (predict_proba(model, data.test_x, torch.device("cpu")).argmax(1) == data.test_y).mean()
    )
    onnx_path = out / "model.onnx"
    example = (torch.from_numpy(data.test_x[:2].astype(np.float32)),)
    export_onnx(
        model,
        example,
        onnx_path,
        [INPUT_NAME],
        [OUTPUT_NAME],
        {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
    )
    par = parity(model, onnx_path, parity_cases(data))
    log.info("parity torch vs onnxruntime: max abs %.3g", par["max_abs_diff"])
    evaluation = evaluate_onnx(out, data)
    evaluation["test_accuracy_torch"] = round(100.0 * torch_test, 2)
    evaluation["baselines"] = {
        "nearest_centroid_test_accuracy": nearest_centroid(data),
        "logistic_regression_test_accuracy": logistic_regression(data, cfg.seed),
        "published_test_accuracy": PUBLISHED_ANCHORS,
        "published_note": ANCHORS_NOTE,
    }
    evaluation["evaluated_with"] = "onnxruntime CPU on model.onnx, raw 0-255 pixels as FP32"
    log.info("test accuracy %.2f%% (onnxruntime)", evaluation["test"]["accuracy"])  # type: ignore[index]
    report["pipeline_seconds"] = round(time.monotonic() - pipeline_start, 1)
    manifest: dict[str, object] = {
        "name": name,
        "version": int(out.name) if out.name.isdigit() else out.name,
        "task": "classify",
        "description": "LSTM over the 28 rows of an MNIST digit (28 raw 0-255 pixels per step); "
        "returns softmax probabilities.",
        "inputs": [tensor_spec(INPUT_NAME, "FP32", [-1, 28, 28])],
        "outputs": [tensor_spec(OUTPUT_NAME, "FP32", [-1, len(LABELS)])],
        "parameters": {
            "labels": LABELS,
            "sequence_length": 28,
            "feature_size": 28,
            "value_min": 0.0,
            "value_max": 255.0,
        },
        "training": {
            "data": data_provenance(ALL_FILES, REPO_ROOT),
            "data_use": {
                "train": "train images 0-54,999",
                "model_selection": "train images 55,000-59,999 (best epoch)",
                "report": "the 10,000 test images",
            },
            "preprocessing": "inside the graph: x / 255, then (x - 0.1307) / 0.3081",
            "config": cfg.to_dict(),
            "seed": cfg.seed,
            "epochs": cfg.epochs,
            "libraries": library_versions(),
            **report,
        },
        "evaluation": evaluation,
        "parity": par,
    }
    write_manifest(out, manifest)
    log.info("wrote %s", out)
    return manifest


def config_from_args(
    epochs: int | None, seed: int | None, max_seconds: float | None = None, threads: int | None = None
) -> ClassifyConfig:
    cfg = ClassifyConfig()
    if max_seconds is not None:
        cfg = replace(cfg, max_train_seconds=max_seconds)
    if threads is not None:
        cfg = replace(cfg, torch_threads=threads)
    if epochs is not None:
        cfg = replace(cfg, epochs=epochs)
    if seed is not None:
        cfg = replace(cfg, seed=seed)
    return cfg


def reevaluate(version_dir: Path) -> dict[str, object]:
    manifest = json.loads((version_dir / "model.json").read_text())
    evaluation = evaluate_onnx(version_dir, load_mnist())
    print(f"{manifest['name']} v{manifest['version']} (re-run with onnxruntime)")
    for split in ("test", "validation"):
        stored = manifest["evaluation"][split]["accuracy"]
        got = evaluation[split]["accuracy"]  # type: ignore[index]
        verdict = "same" if stored == got else "DIFFERENT"
        print(f"{split:<11} manifest {stored:6.2f}  re-run {got:6.2f}  {verdict}")
    return evaluation
