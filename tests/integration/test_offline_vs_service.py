"""The service must answer exactly what the offline evaluation computed for the same series."""

from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.config import Settings
from training.forecast_eval import onnx_forecast
from training.forecast_pipeline import M4_TRAIN
from training.series_io import load_m4_wide

REPO = Path(__file__).resolve().parents[2]


def test_service_forecast_equals_offline_evaluation_forecast():
    series = load_m4_wide(M4_TRAIN)
    ids = ["H1", "H150", "H414"]
    with TestClient(create_app(Settings(model_repository=REPO / "models"))) as client:
        resp = client.post(
            "/v1/forecast",
            json={"model": "m4-hourly", "series": [{"id": i, "values": series[i].tolist()} for i in ids]},
        )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    quantile_keys = list(body["forecasts"][0]["quantiles"])
    # What `python -m training evaluate-forecast` scores: the last context_length values of each series.
    context_length = body["forecasts"][0]["context_length_used"]
    served_dir = REPO / "models/m4-hourly" / str(body["model"]["version"])
    offline = onnx_forecast(served_dir / "model.onnx", [series[i][-context_length:] for i in ids])
    for row, forecast, sid in zip(offline, body["forecasts"], ids, strict=True):
        assert forecast["id"] == sid
        served = np.array([forecast["quantiles"][k] for k in quantile_keys]).T
        np.testing.assert_allclose(served, row, rtol=1e-6, atol=0)


@pytest.mark.parametrize("model", ["sst2-bilstm", "sst2-distilled"])
def test_service_sentiment_equals_offline_evaluation(model: str):
    from tokenizers import Tokenizer

    from training.sentiment_pipeline import SST_TEST, onnx_probabilities
    from training.sentiment_train import read_tsv

    texts, _ = read_tsv(SST_TEST)
    sample = [*texts[:20], "This movie was GREAT!!!", "I didn't like it."]
    with TestClient(create_app(Settings(model_repository=REPO / "models"))) as client:
        resp = client.post("/v1/sentiment", json={"model": model, "texts": sample})
        max_tokens = client.get(f"/v1/models/{model}").json()["parameters"]["max_tokens"]
    assert resp.status_code == 200, resp.text
    assert resp.json()["model"]["name"] == model
    version_dir = REPO / "models" / model / str(resp.json()["model"]["version"])
    tok = Tokenizer.from_file(str(version_dir / "tokenizer.json"))
    offline = onnx_probabilities(version_dir / "model.onnx", tok, sample, max_tokens)
    served = np.array(
        [[r["probabilities"]["negative"], r["probabilities"]["positive"]] for r in resp.json()["results"]]
    )
    np.testing.assert_allclose(served, offline, rtol=0, atol=1e-6)
