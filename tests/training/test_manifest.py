import json
from pathlib import Path
from typing import Any

from training.manifest import sha256_file, write_manifest

REPO = Path(__file__).resolve().parents[2]


def test_committed_manifest_checksums_match_files(committed_forecaster_dir: Path):
    files = json.loads((committed_forecaster_dir / "model.json").read_text())["files"]
    assert {"model.onnx", "torch_state.pt", "profile.json", "report.md"} <= set(files)
    for name, meta in files.items():
        path = committed_forecaster_dir / name
        assert sha256_file(path) == meta["sha256"]
        assert path.stat().st_size == meta["bytes"]


def test_committed_manifest_records_contract_and_provenance(forecaster_manifest: dict[str, Any]):
    m = forecaster_manifest
    assert (m["name"], m["version"], m["task"]) == ("m4-hourly", 1, "forecast")
    p = m["parameters"]
    assert p["horizon"] == 48 and p["season_length"] == 24
    assert p["min_context_length"] >= 168 and p["context_length"] >= p["min_context_length"]
    assert {0.1, 0.5, 0.9} <= set(p["quantiles"])
    assert m["inputs"] == [{"name": "values", "datatype": "FP32", "shape": [-1, -1]}]
    assert m["outputs"][0]["shape"] == [-1, 48, len(p["quantiles"])]
    for entry in m["training"]["data"]:
        assert sha256_file(REPO / entry["path"]) == entry["sha256"]
    assert m["training"]["libraries"]["torch"].startswith("2.13.0")


def test_write_manifest_checksums_every_artifact(tmp_path: Path):
    (tmp_path / "model.onnx").write_bytes(b"graph")
    (tmp_path / "tokenizer.json").write_text("{}")
    path = write_manifest(tmp_path, {"name": "x", "version": 1})
    body = path.read_text()
    assert sha256_file(tmp_path / "model.onnx") in body
    assert "tokenizer.json" in body and '"model.json"' not in body
