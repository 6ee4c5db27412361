import json
from pathlib import Path
from typing import Any

import pytest

from training.manifest import sha256_file
from training.sentiment_pipeline import PUBLISHED_ANCHORS, reevaluate

REPO = Path(__file__).resolve().parents[2]
SENTIMENT_DIR = REPO / "models/sst2-bilstm/1"


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    return json.loads((SENTIMENT_DIR / "model.json").read_text())


def test_checksums_match_files(manifest: dict[str, Any]):
    files = manifest["files"]
    assert {"model.onnx", "tokenizer.json", "torch_state.pt"} <= set(files)
    for name, meta in files.items():
        path = SENTIMENT_DIR / name
        assert sha256_file(path) == meta["sha256"]
        assert path.stat().st_size == meta["bytes"]


def test_contract_and_provenance(manifest: dict[str, Any]):
    m = manifest
    assert (m["name"], m["version"], m["task"]) == ("sst2-bilstm", 1, "sentiment")
    assert m["inputs"] == [
        {"name": "input_ids", "datatype": "INT64", "shape": [-1, -1]},
        {"name": "lengths", "datatype": "INT64", "shape": [-1]},
    ]
    assert m["outputs"] == [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 2]}]
    p = m["parameters"]
    assert p["labels"] == ["negative", "positive"]
    assert p["tokenizer"] == "tokenizer.json" and p["pad_id"] == 0 and p["truncation"] == "keep_first"
    assert p["max_tokens"] >= 64
    t = m["training"]
    assert {Path(d["path"]).name for d in t["data"]} == {"glue_train.tsv", "glue_dev.tsv", "test_labeled.tsv"}
    for entry in t["data"]:
        assert sha256_file(REPO / entry["path"]) == entry["sha256"]
    assert "MiniLM" in t["vocab_source"]["vocabulary"]
    assert t["libraries"]["torch"].startswith("2.13.0")
    assert t["train_limit"] is None
    assert t["train_seconds"] > 0  # recorded for the README; how long it took is not a test property
    assert len(t["history"]) == t["epochs"]


def test_committed_accuracy_meets_the_bar(manifest: dict[str, Any]):
    ev = manifest["evaluation"]
    assert ev["test_labeled"]["n"] == 1821 and ev["glue_dev"]["n"] == 872
    assert ev["test_labeled"]["accuracy"] >= 85.0
    assert ev["published_anchors_test_accuracy"] == dict(PUBLISHED_ANCHORS)


def test_evaluate_sentiment_reproduces_the_manifest(
    manifest: dict[str, Any], capsys: pytest.CaptureFixture[str]
):
    again = reevaluate(SENTIMENT_DIR)
    for split in ("glue_dev", "test_labeled"):
        assert again[split] == manifest["evaluation"][split]
    printed = capsys.readouterr().out
    assert "BiLSTM (Tai et al. 2015)" in printed and "DIFFERENT" not in printed
