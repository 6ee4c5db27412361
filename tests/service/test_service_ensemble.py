"""models/m4-hourly-ensemble (its highest version) is served by the ordinary forecast task, /v1 and V2."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnxruntime as ort
from fastapi.testclient import TestClient
from svc_helpers import MODELS, assert_error

NAME = "m4-hourly-ensemble"


def test_v1_forecast_is_the_graph_on_the_last_context_length_values(
    client: TestClient, m4_series: list[tuple[str, list[float]]]
) -> None:
    # Different lengths in one request: each row uses its last <= 336 values.
    rows = [values[-n:] for (_, values), n in zip(m4_series, (168, 250, 700), strict=True)]
    response = client.post("/v1/forecast", json={"model": NAME, "series": [{"values": r} for r in rows]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"]["name"] == NAME
    served = MODELS / NAME / str(body["model"]["version"])
    assert served.name == max((p.name for p in (MODELS / NAME).iterdir()), key=int)
    sess = ort.InferenceSession(str(served / "model.onnx"), providers=["CPUExecutionProvider"])
    for row, forecast in zip(rows, body["forecasts"], strict=True):
        context = np.asarray([row[-336:]], dtype=np.float32)
        expected = sess.run(None, {"values": context})[0][0]
        assert forecast["context_length_used"] == context.shape[1]
        np.testing.assert_allclose(forecast["point"], expected[:, 3], rtol=1e-5, atol=1e-4)
        bands = np.asarray(list(forecast["quantiles"].values())).T
        assert (np.diff(bands, axis=1) >= 0).all()


def test_v2_infer_equals_v1_and_short_rows_are_refused(
    client: TestClient, m4_series: list[tuple[str, list[float]]]
) -> None:
    values = np.asarray([v[-336:] for _, v in m4_series], dtype=np.float32)
    v1 = client.post("/v1/forecast", json={"model": NAME, "series": [{"values": r.tolist()} for r in values]})
    tensor = {
        "name": "values",
        "datatype": "FP32",
        "shape": list(values.shape),
        "data": values.ravel().tolist(),
    }
    v2 = client.post(f"/v2/models/{NAME}/infer", json={"inputs": [tensor]})
    assert v2.status_code == 200, v2.text
    out: dict[str, Any] = v2.json()["outputs"][0]
    assert out["name"] == "quantiles" and out["shape"] == [3, 48, 7]
    quantiles = np.asarray(out["data"], dtype=np.float32).reshape(out["shape"])
    for row, forecast in zip(quantiles, v1.json()["forecasts"], strict=True):
        np.testing.assert_allclose(row[:, 3], forecast["point"], rtol=1e-6, atol=1e-6)
    short = client.post(
        "/v1/forecast", json={"model": NAME, "series": [{"values": values[0, :100].tolist()}]}
    )
    detail = assert_error(short, 422, loc=["body", "series", 0, "values"])["details"][0]
    assert detail["msg"] == "100 values given; this model needs at least 168"
