"""POST /v1/classify on the committed MNIST-rows model: real test images, order, batch invariance, the V2
tensor view of the handler, and every kind of bad sequence."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from gen_helpers import CLASSIFY_MODEL, model_repository
from svc_helpers import MODELS, REPO, assert_error, make_settings

from service.app import create_app
from service.exceptions import InvalidInputError
from service.tasks import TensorTask
from service.tasks.classify import ClassifyHandler

SAMPLE = REPO / "tests" / "data" / "mnist_test_sample.json"
MANIFEST = json.loads((MODELS / CLASSIFY_MODEL / "1" / "model.json").read_text())
LABELS = MANIFEST["parameters"]["labels"]
MAX_SEQUENCES = 32


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    repo: Path = model_repository(tmp_path_factory.mktemp("classify"), CLASSIFY_MODEL)
    with TestClient(create_app(make_settings(repo, max_sequences_per_request=MAX_SEQUENCES))) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def sample() -> tuple[list[Any], list[str]]:
    """The 20 real MNIST test images committed with their labels (raw 0-255 pixels, 28 rows of 28)."""
    samples = json.loads(SAMPLE.read_text())["samples"]
    images, labels = [s["sequence"] for s in samples], [str(s["label"]) for s in samples]
    assert len(images) == len(labels) == 20
    return images, labels


def _classify(client: TestClient, sequences: Any) -> list[dict[str, Any]]:
    response = client.post("/v1/classify", json={"sequences": sequences})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == {"name": CLASSIFY_MODEL, "version": 1}
    return list(body["results"])


def _blank(value: float = 0.0) -> list[list[float]]:
    return [[value] * 28 for _ in range(28)]


def test_real_test_images_get_their_labels_in_order(client: TestClient, sample: Any) -> None:
    images, labels = sample
    results = _classify(client, images)
    predicted = [r["label"] for r in results]
    correct = sum(p == t for p, t in zip(predicted, labels, strict=True))
    assert correct >= 18, list(zip(predicted, labels, strict=True))
    for result in results:
        probs = result["probabilities"]
        assert list(probs) == LABELS
        assert sum(probs.values()) == pytest.approx(1.0, abs=1e-5)
        assert result["score"] == max(probs.values()) and result["label"] == max(probs, key=probs.get)


def test_an_answer_does_not_depend_on_the_rest_of_the_batch(client: TestClient, sample: Any) -> None:
    images, _ = sample
    together = _classify(client, images)
    for image, in_batch in zip(images, together, strict=True):
        [alone] = _classify(client, [image])
        for label, p in alone["probabilities"].items():
            assert in_batch["probabilities"][label] == pytest.approx(p, abs=1e-6)


def test_integer_and_float_pixels_at_the_range_ends_are_accepted(client: TestClient) -> None:
    [low, high] = _classify(client, [[[0] * 28] * 28, _blank(255.0)])
    assert low["label"] in LABELS and high["label"] in LABELS


def _bad(client: TestClient, sequences: Any, loc: list[Any]) -> dict[str, Any]:
    return assert_error(client.post("/v1/classify", json={"sequences": sequences}), 422, loc)


def test_wrong_step_count_and_feature_count_are_refused_by_position(client: TestClient) -> None:
    _bad(client, [_blank(), _blank()[:27]], ["body", "sequences", 1])
    rows = _blank()
    rows[5] = rows[5][:27]
    _bad(client, [rows], ["body", "sequences", 0, 5])
    _bad(client, [[*_blank(), [0.0] * 28]], ["body", "sequences", 0])


@pytest.mark.parametrize("value", [-1, -0.001, 255.001, 256, 1e30])
def test_out_of_range_values_are_refused_by_position(client: TestClient, value: float) -> None:
    rows = _blank()
    rows[3][4] = value
    error = _bad(client, [_blank(), rows], ["body", "sequences", 1, 3, 4])
    assert len(error["details"]) == 1


def test_non_finite_values_are_refused_by_position(client: TestClient) -> None:
    # JSON has no NaN; Python's encoder writes the bare token, which the service must refuse by field.
    body = json.dumps({"sequences": [[[0.0] * 27 + [float("nan")]] + [[0.0] * 28] * 27]})
    response = client.post("/v1/classify", content=body, headers={"content-type": "application/json"})
    assert_error(response, 422, ["body", "sequences", 0, 0, 27])


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"sequences": []}, ["body", "sequences"]),
        ({}, ["body", "sequences"]),
        ({"sequences": [[["1"] * 28] * 28]}, ["body", "sequences", 0, 0, 0]),
        ({"sequences": [[[True] * 28] * 28]}, ["body", "sequences", 0, 0, 0]),
        ({"sequences": [[[[0.0]] * 28] * 28]}, ["body", "sequences", 0, 0, 0]),
        ({"sequences": [[0.0] * 28]}, ["body", "sequences", 0, 0]),
        ({"sequences": [_blank()] * (MAX_SEQUENCES + 1)}, ["body", "sequences"]),
        ({"sequences": [_blank()], "model": "nope"}, ["body", "model"]),
        ({"sequences": [_blank()], "extra": 1}, ["body", "extra"]),
    ],
)
def test_malformed_bodies_get_422_with_loc(client: TestClient, body: dict[str, Any], loc: list[Any]) -> None:
    assert_error(client.post("/v1/classify", json=body), 422, loc)


def _handler(client: TestClient) -> ClassifyHandler:
    handler = client.app.state.registry.resolve(None, "classify").handler  # type: ignore[attr-defined]
    assert isinstance(handler, ClassifyHandler)
    return handler


def test_the_handler_is_a_tensor_task_with_the_same_answers(client: TestClient, sample: Any) -> None:
    images, _ = sample
    handler = _handler(client)
    assert isinstance(handler, TensorTask)
    assert [(s.name, s.datatype, s.shape) for s in handler.tensor_inputs] == [
        ("sequences", "FP32", [-1, 28, 28])
    ]
    assert [(s.name, s.datatype, s.shape) for s in handler.tensor_outputs] == [
        ("probabilities", "FP32", [-1, len(LABELS)])
    ]
    tensor = np.asarray(images[:5], dtype=np.float32)
    outputs = client.portal.call(handler.infer_tensors, {"sequences": tensor})  # type: ignore[union-attr]
    http = _classify(client, images[:5])
    for row, result in zip(outputs["probabilities"], http, strict=True):
        assert row.tolist() == pytest.approx(list(result["probabilities"].values()), abs=1e-6)


@pytest.mark.parametrize(
    ("tensor", "loc"),
    [
        (np.zeros((1, 27, 28), dtype=np.float32), ("sequences",)),
        (np.zeros((0, 28, 28), dtype=np.float32), ("sequences",)),
        (np.full((2, 28, 28), 300.0, dtype=np.float32), ("sequences", 0, 0, 0)),
        (np.full((1, 28, 28), np.inf, dtype=np.float32), ("sequences", 0, 0, 0)),
    ],
)
def test_tensor_inputs_are_checked_like_json_ones(
    client: TestClient, tensor: Any, loc: tuple[Any, ...]
) -> None:
    handler = _handler(client)
    with pytest.raises(InvalidInputError) as caught:
        client.portal.call(handler.infer_tensors, {"sequences": tensor})  # type: ignore[union-attr]
    assert loc in [d.loc for d in caught.value.details]


def test_v2_infer_gives_the_v1_probabilities_and_refuses_bad_pixels(client: TestClient, sample: Any) -> None:
    images, _ = sample
    flat = np.asarray(images[:3], dtype=np.float32).ravel().tolist()
    body = {"inputs": [{"name": "sequences", "datatype": "FP32", "shape": [3, 28, 28], "data": flat}]}
    response = client.post(f"/v2/models/{CLASSIFY_MODEL}/infer", json=body)
    assert response.status_code == 200, response.text
    [output] = response.json()["outputs"]
    assert output["name"] == "probabilities" and output["shape"] == [3, len(LABELS)]
    rows = np.asarray(output["data"]).reshape(3, len(LABELS))
    for row, result in zip(rows, _classify(client, images[:3]), strict=True):
        assert row.tolist() == pytest.approx(list(result["probabilities"].values()), abs=1e-6)
    body["inputs"][0]["data"] = [300.0] * len(flat)
    refused = client.post(f"/v2/models/{CLASSIFY_MODEL}/infer", json=body)
    assert 400 <= refused.status_code < 500, refused.text
