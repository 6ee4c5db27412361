"""``python -m training forecast``: load data, train, export, check parity, evaluate, write manifest."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from training.export import export_onnx, parity
from training.forecast_eval import evaluate_forecaster, format_table
from training.forecast_train import ForecastConfig, train_forecaster
from training.manifest import data_provenance, library_versions, tensor_spec, write_manifest
from training.reports import write_report
from training.series_io import SeriesDict, load_long_csv, load_m4_wide

log = logging.getLogger(__name__)
REPO_ROOT = Path(__file__).resolve().parent.parent
M4_TRAIN = REPO_ROOT / "training/data/m4/Hourly-train.csv"
M4_TEST = REPO_ROOT / "training/data/m4/Hourly-test.csv"


def load_dataset(
    train_csv: Path, test_csv: Path | None, fmt: str, horizon: int
) -> tuple[list[str], list[np.ndarray], np.ndarray]:
    """Return ids, training series and test targets [N, horizon].

    Without a test file the last ``horizon`` points of each series become its test set.
    """
    loader = load_m4_wide if fmt == "m4" else load_long_csv
    train: SeriesDict = loader(train_csv)
    ids = list(train)
    if test_csv is not None:
        test = loader(test_csv)
        if list(test) != ids:
            raise ValueError("train and test files must list the same series in the same order")
        targets = np.stack([test[i][:horizon] for i in ids])
        return ids, [train[i] for i in ids], targets
    return ids, [train[i][:-horizon] for i in ids], np.stack([train[i][-horizon:] for i in ids])


def parity_cases(contexts: list[np.ndarray], cfg: ForecastConfig) -> list[tuple[str, dict[str, np.ndarray]]]:
    """Real series at batch 1, 7 and 64, at the minimum and maximum context lengths."""
    cases = []
    for batch in (1, 7, 64):
        for length in (cfg.min_context_length, cfg.context_length):
            rows = np.stack([c[-length:] for c in contexts[:batch]]).astype(np.float32)
            cases.append((f"batch{batch}_len{length}", {"values": rows}))
    return cases


def run_forecast(
    out: Path, train_csv: Path, test_csv: Path | None, fmt: str, cfg: ForecastConfig, name: str
) -> dict[str, object]:
    out.mkdir(parents=True, exist_ok=True)
    ids, train, test = load_dataset(train_csv, test_csv, fmt, cfg.horizon)
    log.info("loaded %d series from %s", len(ids), train_csv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    model, report = train_forecaster(train, cfg)

    # Kept beside the graph so tests can re-check torch-vs-ONNX parity on the shipped weights.
    torch.save(model.state_dict(), out / "torch_state.pt")
    onnx_path = out / "model.onnx"
    example = torch.from_numpy(np.stack([s[-cfg.context_length :] for s in train[:2]]).astype(np.float32))
    export_onnx(
        model,
        (example,),
        onnx_path,
        ["values"],
        ["quantiles"],
        {"values": {0: "batch", 1: "time"}, "quantiles": {0: "batch"}},
    )
    par = parity(model, onnx_path, parity_cases([s[-cfg.context_length :] for s in train], cfg))
    log.info(
        "parity torch vs onnxruntime: max abs %.3g, max rel %.3g", par["max_abs_diff"], par["max_rel_diff"]
    )

    evaluation = evaluate_forecaster(
        onnx_path, train, test, list(cfg.quantiles), cfg.context_length, cfg.season_length
    )
    print(format_table(evaluation, f"{name} (this model)"))
    data_files = [train_csv] + ([test_csv] if test_csv else [])
    manifest: dict[str, object] = {
        "name": name,
        "version": int(out.name) if out.name.isdigit() else out.name,
        "task": "forecast",
        "description": "Global 2-layer LSTM quantile forecaster; takes raw values, returns raw units.",
        "inputs": [tensor_spec("values", "FP32", [-1, -1])],
        "outputs": [tensor_spec("quantiles", "FP32", [-1, cfg.horizon, len(cfg.quantiles)])],
        "parameters": {
            "horizon": cfg.horizon,
            "context_length": cfg.context_length,
            "min_context_length": cfg.min_context_length,
            "quantiles": list(cfg.quantiles),
            "season_length": cfg.season_length,
        },
        "training": {
            "data": (
                data_provenance(data_files, REPO_ROOT)
                if _inside(data_files)
                else [str(p) for p in data_files]
            ),
            "data_format": fmt,
            "config": {k: v for k, v in cfg.to_dict().items() if k != "extra"},
            "seed": cfg.seed,
            "libraries": library_versions(),
            **{k: v for k, v in report.items() if k != "history"},
            "history": report["history"],
        },
        "evaluation": evaluation,
        "parity": par,
    }
    write_manifest(out, manifest)
    # Pictures and report.md from the artifact just written; they join the manifest's files.
    write_report(out)
    log.info("wrote %s", out)
    return manifest


def _inside(paths: list[Path]) -> bool:
    return all(p.resolve().is_relative_to(REPO_ROOT) for p in paths)


def config_from_args(epochs: int | None, seed: int | None) -> ForecastConfig:
    cfg = ForecastConfig()
    if epochs is not None:
        cfg = replace(cfg, epochs=epochs)
    if seed is not None:
        cfg = replace(cfg, seed=seed)
    return cfg


def reevaluate(version_dir: Path, train_csv: Path, test_csv: Path | None, fmt: str) -> dict[str, object]:
    """Re-score a committed artifact and print it beside the numbers stored in its manifest."""
    manifest = json.loads((version_dir / "model.json").read_text())
    p = manifest["parameters"]
    _, train, test = load_dataset(train_csv, test_csv, fmt, p["horizon"])
    evaluation = evaluate_forecaster(
        version_dir / "model.onnx", train, test, p["quantiles"], p["context_length"], p["season_length"]
    )
    print(format_table(evaluation, f"{manifest['name']} v{manifest['version']} (re-run)"))
    stored = manifest["evaluation"]["model"]
    print(f"manifest OWA {stored['owa']:.4f}, re-run OWA {evaluation['model']['owa']:.4f}")  # type: ignore[index]
    return evaluation
