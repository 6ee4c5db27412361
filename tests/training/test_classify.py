"""MNIST rows: data loading, the module, the shipped classifier's manifest, and its reproduction."""

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from training.classify_pipeline import LABELS, onnx_probabilities, reevaluate
from training.manifest import sha256_file
from training.mnist_data import ALL_FILES, TEST_IMAGES, TEST_LABELS, load_mnist, read_images, read_labels
from training.models import RowLSTMClassifier

REPO = Path(__file__).resolve().parents[2]
VERSION_DIR = REPO / "models/mnist-rows/1"
SAMPLE = REPO / "tests/data/mnist_test_sample.json"


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    return json.loads((VERSION_DIR / "model.json").read_text())


@pytest.fixture(scope="module")
def data():
    return load_mnist()


def test_split_sizes_and_known_labels(data):
    assert data.train_x.shape == (55_000, 28, 28) and data.valid_x.shape == (5_000, 28, 28)
    assert data.test_x.shape == (10_000, 28, 28) and data.test_x.dtype == np.uint8
    assert data.train_y[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert data.test_y[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert np.bincount(data.valid_y).tolist() == [489, 530, 493, 509, 499, 458, 482, 563, 494, 483]


def test_module_scales_inside_and_returns_probabilities():
    torch.manual_seed(0)
    model = RowLSTMClassifier(hidden_size=8, num_layers=1).eval()
    raw = torch.rand(3, 28, 28) * 255
    probs = model(raw)
    assert probs.shape == (3, 10)
    torch.testing.assert_close(probs.sum(1), torch.ones(3))
    # Scaling lives in the graph: raw pixels equal the model fed pre-scaled values through an identity scale.
    model2 = RowLSTMClassifier(hidden_size=8, num_layers=1, value_scale=1.0, mean=0.0, std=1.0).eval()
    model2.load_state_dict(model.state_dict())
    torch.testing.assert_close(model2((raw / 255 - 0.1307) / 0.3081), probs)


def test_every_file_is_listed_and_checksummed(manifest: dict[str, Any]):
    present = {p.name for p in VERSION_DIR.iterdir() if p.is_file() and p.name != "model.json"}
    assert present == set(manifest["files"])
    for name, meta in manifest["files"].items():
        assert sha256_file(VERSION_DIR / name) == meta["sha256"]


def test_contract_and_provenance(manifest: dict[str, Any]):
    assert (manifest["name"], manifest["version"], manifest["task"]) == ("mnist-rows", 1, "classify")
    assert manifest["inputs"] == [{"name": "sequences", "datatype": "FP32", "shape": [-1, 28, 28]}]
    assert manifest["outputs"] == [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]}]
    assert manifest["parameters"] == {
        "labels": LABELS,
        "sequence_length": 28,
        "feature_size": 28,
        "value_min": 0.0,
        "value_max": 255.0,
    }
    data = manifest["training"]["data"]
    assert [REPO / d["path"] for d in data] == ALL_FILES
    assert all(sha256_file(REPO / d["path"]) == d["sha256"] for d in data)
    assert manifest["parity"]["max_abs_diff"] < 1e-5
    ev = manifest["evaluation"]
    assert ev["test"]["n"] == 10_000 and ev["validation"]["n"] == 5_000
    assert (
        ev["baselines"]["nearest_centroid_test_accuracy"]
        < ev["baselines"]["logistic_regression_test_accuracy"]
    )
    assert ev["baselines"]["logistic_regression_test_accuracy"] < ev["test"]["accuracy"]


def test_committed_accuracy_meets_the_bar(manifest: dict[str, Any]):
    assert manifest["evaluation"]["test"]["accuracy"] >= 98.5


def test_evaluate_classify_reproduces_the_manifest(
    manifest: dict[str, Any], capsys: pytest.CaptureFixture[str]
):
    again = reevaluate(VERSION_DIR)
    assert again["test"] == manifest["evaluation"]["test"]
    assert again["validation"] == manifest["evaluation"]["validation"]
    assert "DIFFERENT" not in capsys.readouterr().out


def test_shipped_sample_is_the_official_test_set_head():
    doc = json.loads(SAMPLE.read_text())
    assert doc["source"]["images_sha256"] == sha256_file(TEST_IMAGES)
    assert doc["source"]["labels_sha256"] == sha256_file(TEST_LABELS)
    images, labels = read_images(TEST_IMAGES), read_labels(TEST_LABELS)
    assert len(doc["samples"]) == 20
    for s in doc["samples"]:
        assert np.array_equal(np.asarray(s["sequence"], dtype=np.uint8), images[s["index"]])
        assert s["label"] == labels[s["index"]]
    probs = onnx_probabilities(
        VERSION_DIR / "model.onnx", np.asarray([s["sequence"] for s in doc["samples"]])
    )
    correct = int((probs.argmax(1) == [s["label"] for s in doc["samples"]]).sum())
    assert correct >= 19
