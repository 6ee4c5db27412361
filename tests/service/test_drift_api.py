"""``GET /v1/models/{name}/drift`` on the real repository, fed by both protocols (/v1 and V2)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from svc_helpers import make_settings, read_m4_series

from service.app import create_app

MODELS = Path(__file__).resolve().parents[2] / "models"


def _repository(tmp: Path) -> Path:
    for name in ("m4-hourly", "sst2-bilstm"):
        (tmp / name).symlink_to(MODELS / name, target_is_directory=True)
    return tmp


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with (
        tempfile.TemporaryDirectory() as tmp,
        TestClient(
            create_app(make_settings(_repository(Path(tmp)), drift_refresh_seconds=3600.0))
        ) as test_client,
    ):
        yield test_client


def _rows(client: TestClient, model: str) -> int:
    response = client.get(f"/v1/models/{model}/drift")
    assert response.status_code == 200, response.text
    return int(response.json()["window"]["rows"])


def test_forecast_rows_from_v1_and_v2_reach_the_window(client: TestClient) -> None:
    values = read_m4_series(3)[0][1][-336:]
    before = _rows(client, "m4-hourly")
    v1 = client.post("/v1/forecast", json={"model": "m4-hourly", "series": [{"values": values}] * 3})
    assert v1.status_code == 200, v1.text
    assert _rows(client, "m4-hourly") == before + 3
    body = {"inputs": [{"name": "values", "datatype": "FP32", "shape": [2, len(values)], "data": values * 2}]}
    v2 = client.post("/v2/models/m4-hourly/infer", json=body)
    assert v2.status_code == 200, v2.text
    assert _rows(client, "m4-hourly") == before + 5


def test_sentiment_rows_from_v1_and_v2_reach_the_window(client: TestClient) -> None:
    before = _rows(client, "sst2-bilstm")
    v1 = client.post("/v1/sentiment", json={"model": "sst2-bilstm", "texts": ["a fine film .", "dull ."]})
    assert v1.status_code == 200, v1.text
    body = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["moving and funny"]}]}
    v2 = client.post("/v2/models/sst2-bilstm/infer", json=body)
    assert v2.status_code == 200, v2.text
    assert _rows(client, "sst2-bilstm") == before + 3


def test_report_shows_scores_window_and_reference_side_by_side(client: TestClient) -> None:
    report = client.get("/v1/models/sst2-bilstm/drift").json()
    assert report["model"] == {"name": "sst2-bilstm", "version": 1}
    assert report["enabled"] and report["thresholds"] == {"watch": 0.1, "act": 0.25}
    by_name = {f["name"]: f for f in report["features"]}
    assert set(by_name) == {"tokens", "unk_share", "non_ascii_share", "label"}
    assert by_name["label"]["side"] == "output"
    for feature in report["features"]:
        bins = len(feature["edges"]) + 1
        assert len(feature["reference_frequencies"]) == len(feature["window_frequencies"]) == bins
        assert sum(feature["reference_frequencies"]) == pytest.approx(1.0, abs=1e-5)
        assert feature["status"] in {"ok", "watch", "act"} and feature["psi"] >= 0


def test_unknown_model_is_404_and_disabled_monitoring_says_so(tmp_path: Path) -> None:
    with TestClient(create_app(make_settings(_repository(tmp_path), drift_enabled=False))) as off:
        response = off.get("/v1/models/nope/drift")
        assert response.status_code == 404
        assert response.json()["error"]["details"][0]["loc"] == ["path", "name"]
        body = off.get("/v1/models/m4-hourly/drift").json()
        assert body["enabled"] is False and "SEQSERVE_DRIFT_ENABLED" in body["reason"]


def test_classify_and_generate_feed_their_monitors(tmp_path: Path) -> None:
    import json

    for name in ("mnist-rows", "shakespeare-char"):
        (tmp_path / name).symlink_to(MODELS / name, target_is_directory=True)
    sample = json.loads((MODELS.parent / "tests" / "data" / "mnist_test_sample.json").read_text())["samples"]
    settings = make_settings(tmp_path, drift_refresh_seconds=3600.0)
    with TestClient(create_app(settings)) as client:
        images = [s["sequence"] for s in sample[:3]]
        assert client.post("/v1/classify", json={"sequences": images}).status_code == 200
        report = client.get("/v1/models/mnist-rows/drift").json()
        assert report["window"]["rows"] == 3
        assert {f["name"] for f in report["features"]} == {"value_mean", "label"}

        # Prompts are observed where every protocol encodes them (generation itself is not under test).
        from service.exceptions import InvalidInputError
        from service.tasks.generate import FieldNames

        handler = client.app.state.registry.get("shakespeare-char").handler
        before = _rows(client, "shakespeare-char")  # the warm-up prompt passed through encode too
        handler.encode("ROMEO:\n", FieldNames())
        with pytest.raises(InvalidInputError):
            handler.encode("ROMEO: \U0001f600\n", FieldNames())
        refused = client.post("/v1/generate", json={"prompt": "ROMEO: \U0001f600\n", "max_new_tokens": 1})
        assert refused.status_code == 422
        report = client.get("/v1/models/shakespeare-char/drift").json()
        assert report["window"]["rows"] == before + 3
        oov = next(f for f in report["features"] if f["name"] == "oov_rejected")
        assert oov["window_counts"][1] == 2  # the two refused prompts are the out-of-vocabulary rows
