"""POST /v1/forecast happy paths on real M4 Hourly series and the real model."""

from typing import Any

import numpy as np
from fastapi.testclient import TestClient
from svc_helpers import MODEL_NAME

from service.http.schemas_v1 import ForecastResponse

Series = list[tuple[str, list[float]]]


def _post(client: TestClient, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/v1/forecast", json=body)
    assert response.status_code == 200, response.text
    ForecastResponse.model_validate(response.json())  # the documented schema is what we send
    return response.json()


def test_three_m4_series(client: TestClient, m4_series: Series, manifest: dict[str, Any]) -> None:
    params = manifest["parameters"]
    body = {"series": [{"id": sid, "values": values} for sid, values in m4_series]}
    result = _post(client, body)
    assert result["model"] == {"name": MODEL_NAME, "version": manifest["version"]}
    assert [f["id"] for f in result["forecasts"]] == [sid for sid, _ in m4_series]
    keys = [repr(q) for q in params["quantiles"]]
    for forecast in result["forecasts"]:
        assert list(forecast["quantiles"]) == keys
        grid = np.array([forecast["quantiles"][k] for k in keys])
        assert grid.shape == (len(keys), params["horizon"]) == (len(keys), 48)
        assert np.all(np.diff(grid, axis=0) >= 0), "quantiles must be ordered at every step"
        assert forecast["point"] == forecast["quantiles"]["0.5"]
        assert np.isfinite(grid).all()


def test_missing_id_is_echoed_as_null(client: TestClient, m4_series: Series) -> None:
    result = _post(client, {"series": [{"values": m4_series[0][1]}]})
    assert result["forecasts"][0]["id"] is None


def test_horizon_and_quantile_subsets(client: TestClient, m4_series: Series) -> None:
    values = m4_series[0][1]
    full = _post(client, {"series": [{"values": values}]})["forecasts"][0]
    part = _post(client, {"horizon": 12, "quantiles": [0.1, 0.9], "series": [{"values": values}]})[
        "forecasts"
    ][0]
    assert list(part["quantiles"]) == ["0.1", "0.9"]
    assert len(part["point"]) == 12
    for key in ("0.1", "0.9"):
        assert part["quantiles"][key] == full["quantiles"][key][:12]
    assert part["point"] == full["point"][:12]


def test_long_series_is_cut_to_context_length(client: TestClient, m4_series: Series, params: dict) -> None:
    values = m4_series[1][1]
    context = params["context_length"]
    assert len(values) > context
    long = _post(client, {"series": [{"values": values}]})["forecasts"][0]
    tail = _post(client, {"series": [{"values": values[-context:]}]})["forecasts"][0]
    assert long["context_length_used"] == context
    assert long == tail


def test_short_series_reports_its_length(client: TestClient, m4_series: Series, params: dict) -> None:
    values = m4_series[0][1][-params["min_context_length"] :]
    forecast = _post(client, {"series": [{"values": values}]})["forecasts"][0]
    assert forecast["context_length_used"] == params["min_context_length"]


def test_scale_equivariance(client: TestClient, m4_series: Series) -> None:
    body = {"series": [{"values": values} for _, values in m4_series]}
    scaled = {"series": [{"values": [v * 1000 for v in values]} for _, values in m4_series]}
    base = _post(client, body)["forecasts"]
    big = _post(client, scaled)["forecasts"]
    for a, b in zip(base, big, strict=True):
        for key in a["quantiles"]:
            np.testing.assert_allclose(
                np.array(b["quantiles"][key]), 1000 * np.array(a["quantiles"][key]), rtol=1e-4
            )


def test_named_model_and_integer_values(client: TestClient) -> None:
    values = [int(100 + 10 * np.sin(i / 3)) for i in range(200)]
    result = _post(client, {"model": MODEL_NAME, "series": [{"values": values}]})
    assert result["forecasts"][0]["context_length_used"] == 200
