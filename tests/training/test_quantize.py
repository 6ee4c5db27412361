"""The committed int8 versions: provenance, quantized graph, a gate consistent with the recorded
scores, scores that re-run to the same numbers, and a re-quantization that reproduces the file."""

import json
from pathlib import Path
from typing import Any

import onnx
import pytest

from training.forecast_pipeline import load_dataset
from training.manifest import sha256_file
from training.quantize import (
    QUANTIZED_OPS,
    Candidate,
    forecast_data_files,
    forecast_gate,
    quantize_version,
    sentiment_gate,
)

REPO = Path(__file__).resolve().parents[2]
INT8_DIRS = [REPO / "models/m4-hourly/2", REPO / "models/sst2-bilstm/2"]


def _load(version_dir: Path) -> dict[str, Any]:
    return json.loads((version_dir / "model.json").read_text())


@pytest.fixture(params=INT8_DIRS, ids=lambda d: f"{d.parent.name}-v{d.name}")
def int8(request: pytest.FixtureRequest) -> tuple[Path, dict[str, Any], Path, dict[str, Any]]:
    """(int8 folder, its manifest, fp32 source folder, source manifest)."""
    version_dir: Path = request.param
    manifest = _load(version_dir)
    src_dir = version_dir.parent / str(manifest["quantization"]["source"]["version"])
    return version_dir, manifest, src_dir, _load(src_dir)


def test_checksums_match_and_torch_weights_are_not_shipped(int8):
    version_dir, manifest, _, src = int8
    files = manifest["files"]
    assert "model.onnx" in files and not any(name.endswith(".pt") for name in files)
    assert {p.name for p in version_dir.iterdir()} == {*files, "model.json"}
    for name, meta in files.items():
        assert sha256_file(version_dir / name) == meta["sha256"]
        assert (version_dir / name).stat().st_size == meta["bytes"]
    # What the graph needs beside it (the tokenizer) is copied unchanged. The drift profile and the
    # evaluation report describe one version's own outputs, so each version has its own (or none).
    for name, meta in src["files"].items():
        if name in ("model.onnx", "profile.json") or name.endswith(".pt") or name.startswith("report"):
            continue
        assert files[name] == meta


def test_contract_and_provenance(int8):
    version_dir, manifest, src_dir, src = int8
    assert manifest["version"] == int(version_dir.name) and manifest["version"] != src["version"]
    for key in ("name", "task", "inputs", "outputs", "parameters", "training"):
        assert manifest[key] == src[key], key
    q = manifest["quantization"]
    assert q["method"] == "onnxruntime.quantization.quantize_dynamic"
    assert q["weight_type"] in ("QInt8", "QUInt8") and isinstance(q["per_channel"], bool)
    assert q["source"]["name"] == src["name"] and q["source"]["version"] == src["version"]
    # A source slimmed after its int8 variant was made (training/onnx_slim.py) records the graph it had.
    slimmed = src.get("onnx_slim", {})
    source_sha = slimmed.get("model_onnx_sha256_before", src["files"]["model.onnx"]["sha256"])
    assert q["source"]["model_onnx_sha256"] == source_sha
    if not slimmed:
        assert sha256_file(src_dir / "model.onnx") == source_sha
    chosen = {k: q[k] for k in ("weight_type", "per_channel", "scope")}
    assert chosen in [{k: c[k] for k in chosen} for c in q["selection"]["candidates"]]


def test_graph_contains_quantized_ops(int8):
    version_dir, manifest, _, _ = int8
    ops = {node.op_type for node in onnx.load(str(version_dir / "model.onnx")).graph.node}
    assert ops & QUANTIZED_OPS
    assert set(manifest["quantization"]["quantized_ops"]) == ops & QUANTIZED_OPS
    assert "LSTM" not in ops  # every LSTM became DynamicQuantizeLSTM
    assert "DynamicQuantizeLSTM" in ops


def test_quality_gate_is_consistent_with_the_recorded_scores(int8):
    _, manifest, _, src = int8
    gate = manifest["quality_gate"]
    if manifest["task"] == "forecast":
        fp32, got = src["evaluation"]["model"]["owa"], manifest["evaluation"]["model"]["owa"]
        assert gate["metric"] == "owa"
        assert gate["threshold"] == pytest.approx(1.01 * fp32)
        assert gate["passed"] == (got <= 1.01 * fp32 + 1e-9)
    else:
        fp32 = src["evaluation"]["test_labeled"]["accuracy"]
        got = manifest["evaluation"]["test_labeled"]["accuracy"]
        assert gate["metric"] == "accuracy" and gate["split"] == "test_labeled"
        assert gate["threshold"] == pytest.approx(fp32 - 0.3)
        assert gate["passed"] == (got >= fp32 - 0.3 - 1e-9)
    assert (gate["fp32"], gate["int8"]) == (fp32, got)


def test_default_follows_the_gate_and_the_recorded_policy(int8):
    _, manifest, _, _ = int8
    inv = manifest["batch_invariance"]
    assert inv["passed"] == (inv["int8"]["max_rel_diff"] <= 1e-5)
    policy = manifest["default_policy"]["policy"]
    assert policy in ("quality", "quality+batch-invariance")
    expected = manifest["quality_gate"]["passed"] and (policy == "quality" or inv["passed"])
    assert manifest["default"] is expected


def test_reevaluating_the_int8_artifact_reproduces_its_manifest(int8):
    version_dir, manifest, _, _ = int8
    stored = manifest["evaluation"]
    if manifest["task"] == "forecast":
        from training.forecast_eval import evaluate_forecaster

        p = manifest["parameters"]
        train_csv, test_csv, fmt = forecast_data_files(manifest)
        _, train, test = load_dataset(train_csv, test_csv, fmt, p["horizon"])
        again = evaluate_forecaster(
            version_dir / "model.onnx", train, test, p["quantiles"], p["context_length"], p["season_length"]
        )
        assert again["model"]["owa"] == pytest.approx(stored["model"]["owa"], abs=1e-3)
        assert again["model"]["smape"] == pytest.approx(stored["model"]["smape"], abs=1e-2)
        assert again["interval_0.1_0.9_coverage"] == pytest.approx(
            stored["interval_0.1_0.9_coverage"], abs=1e-3
        )
        assert again["test_series"] == stored["test_series"]
    else:
        from training.sentiment_pipeline import evaluate_onnx

        again = evaluate_onnx(version_dir, manifest["parameters"]["max_tokens"])
        for split in ("glue_dev", "test_labeled"):
            assert again[split] == stored[split]


def test_requantizing_with_the_recorded_settings_reproduces_the_forecaster(tmp_path: Path):
    committed = REPO / "models/m4-hourly/2"
    manifest = _load(committed)
    q = manifest["quantization"]
    cand = Candidate(q["weight_type"], q["per_channel"], q["scope"])
    out = tmp_path / "m4-hourly" / "2"
    again = quantize_version(REPO / "models/m4-hourly/1", out, [cand])
    assert sha256_file(out / "model.onnx") == manifest["files"]["model.onnx"]["sha256"]
    assert again["quality_gate"] == manifest["quality_gate"]
    assert again["default"] == manifest["default"]
    with pytest.raises(FileExistsError):
        quantize_version(REPO / "models/m4-hourly/1", out, [cand])


def test_refuses_a_version_folder_that_is_not_an_integer(tmp_path: Path):
    with pytest.raises(ValueError, match="integer"):
        quantize_version(REPO / "models/m4-hourly/1", tmp_path / "int8", [Candidate("QInt8", False, "lstm")])


def test_gate_rules_at_their_boundaries():
    assert forecast_gate(0.5, 0.505)["passed"] is True
    assert forecast_gate(0.5, 0.5051)["passed"] is False
    assert forecast_gate(0.5, 0.45)["passed"] is True
    # 87.48 - 0.3 is 87.18000000000001 in floating point; the threshold is rounded to 2 decimals.
    assert sentiment_gate(87.48, 87.18)["passed"] is True
    assert sentiment_gate(87.48, 87.17)["passed"] is False
    assert sentiment_gate(87.48, 88.0)["passed"] is True
