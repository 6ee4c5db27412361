"""models/sst2-distilled/{1,2}: BiLSTMs distilled from a MiniLM teacher, re-scored from their artifacts."""

import json
from pathlib import Path
from typing import Any

import pytest

from training.distill_pipeline import ANCHORS
from training.manifest import sha256_file
from training.sentiment_pipeline import reevaluate

REPO = Path(__file__).resolve().parents[2]
BASELINE = REPO / "models/sst2-bilstm/1"
# Issue #13's first bar for sentiment, on the 1,821-sentence test set.
FIRST_BAR_TEST_ACCURACY = 88.5


@pytest.fixture(scope="module", params=["1", "2"])
def version_dir(request: pytest.FixtureRequest) -> Path:
    return REPO / "models/sst2-distilled" / request.param


@pytest.fixture(scope="module")
def manifest(version_dir: Path) -> dict[str, Any]:
    return json.loads((version_dir / "model.json").read_text())


@pytest.fixture(scope="module")
def baseline() -> dict[str, Any]:
    return json.loads((BASELINE / "model.json").read_text())


def test_checksums_cover_every_file_and_the_teacher_does_not_ship(
    manifest: dict[str, Any], version_dir: Path
):
    files = manifest["files"]
    assert {"model.onnx", "tokenizer.json", "torch_state.pt", "profile.json"} <= set(files)
    for name, meta in files.items():
        assert sha256_file(version_dir / name) == meta["sha256"]
    on_disk = {p.name for p in version_dir.iterdir()}
    assert on_disk == set(files) | {"model.json"}
    assert not any("teacher" in name for name in on_disk)
    # The student (ONNX + torch state, 23 MB each) only: the teacher alone would add 90 MB.
    assert sum(meta["bytes"] for meta in files.values()) < 50 * 2**20


def test_same_contract_and_cost_as_the_bilstm(
    manifest: dict[str, Any], baseline: dict[str, Any], version_dir: Path
):
    assert (manifest["name"], manifest["version"], manifest["task"]) == (
        "sst2-distilled", int(version_dir.name), "sentiment"
    )  # fmt: skip
    assert manifest["inputs"] == baseline["inputs"] and manifest["outputs"] == baseline["outputs"]
    assert manifest["parameters"] == baseline["parameters"]
    assert manifest["files"]["tokenizer.json"]["sha256"] == baseline["files"]["tokenizer.json"]["sha256"]
    for key in ("embed_dim", "hidden_size", "max_tokens"):
        assert manifest["training"]["config"][key] == baseline["training"]["config"][key]


def test_distillation_is_recorded(manifest: dict[str, Any]):
    d = manifest["training"]["distillation"]
    teacher = d["teacher"]
    assert teacher["ships"] is False and "MiniLM" in teacher["base"]
    assert 0.5 < teacher["accuracy"]["glue_dev"] <= 1 and 0.5 < teacher["accuracy"]["test_labeled"] <= 1
    assert teacher["fine_tune_seconds"] > 0 and teacher["config"]["epochs"] >= 1
    ts = d["transfer_set"]
    assert ts["originals"] == 67349 and ts["augmented"] > 0
    assert ts["augmentation"]["p_mask"] == 0.1 and ts["augmentation"]["p_swap"] == 0.1
    assert ts["augmentation"]["p_ngram"] == 0.25
    assert ts["label_seconds"] > 0
    assert manifest["training"]["data_use"]["model_selection"] == "glue_dev.tsv"


def test_committed_accuracy_beats_the_bilstm_and_the_cnn(manifest: dict[str, Any], baseline: dict[str, Any]):
    ev = manifest["evaluation"]
    assert ev["test_labeled"]["n"] == 1821 and ev["glue_dev"]["n"] == 872
    # Ahead of sst2-bilstm v1 on both splits, and of the BiLSTM and CNN anchors on test. (Version 1 misses
    # issue #13's first bar, 88.5; version 2 reaches it: below.)
    for split in ("glue_dev", "test_labeled"):
        assert ev[split]["accuracy"] > baseline["evaluation"][split]["accuracy"]
    assert ev["test_labeled"]["accuracy"] > max(dict(ANCHORS)[k] for k in dict(ANCHORS) if "Tang" not in k)
    assert ev["published_anchors_test_accuracy"] == dict(ANCHORS)


def test_evaluate_sentiment_reproduces_the_manifest(
    manifest: dict[str, Any], version_dir: Path, capsys: pytest.CaptureFixture[str]
):
    again = reevaluate(version_dir)
    for split in ("glue_dev", "test_labeled"):
        assert again[split] == manifest["evaluation"][split]
    printed = capsys.readouterr().out
    assert "Tang et al. 2019" in printed and "DIFFERENT" not in printed


def test_version_2_was_chosen_on_dev_and_reaches_the_first_bar():
    v1, v2 = (json.loads((REPO / f"models/sst2-distilled/{v}/model.json").read_text()) for v in (1, 2))
    selection = v2["training"]["selection"]
    students = v2["training"]["students"]
    # Dev chose: the chosen candidate has the highest dev accuracy of all, v1's student among them.
    best = max(float(c["dev_accuracy"]) for c in selection["candidates"])
    chosen = next(c for c in selection["candidates"] if c["students"] == selection["chosen"])
    assert float(chosen["dev_accuracy"]) == best == v2["training"]["best_dev_accuracy"]
    assert any(s["from"] == "models/sst2-distilled/1" for s in students)
    assert v2["evaluation"]["glue_dev"]["accuracy"] > v1["evaluation"]["glue_dev"]["accuracy"]
    assert v2["evaluation"]["test_labeled"]["accuracy"] >= FIRST_BAR_TEST_ACCURACY
    # Every configuration scored on test is counted, the shipped one included.
    looks = v2["training"]["earlier_test_looks"]
    assert v2["training"]["configurations_scored_on_test"] == len(looks) >= 8
    assert {look["dev"] for look in looks} >= {87.96}
