from typing import Any

from fastapi.testclient import TestClient
from svc_helpers import MODEL_NAME, MODELS, assert_error, make_settings

from service.app import create_app


def test_healthz(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}


# Every model folder of the committed repository; the list grows as models are added.
REPOSITORY_MODELS = sorted(p.name for p in MODELS.iterdir() if p.is_dir() and not p.name.startswith("."))


def test_readyz(client: TestClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "models": REPOSITORY_MODELS}
    assert {MODEL_NAME, "sst2-bilstm", "lstm-next-step"} <= set(REPOSITORY_MODELS)


def test_list_models(client: TestClient, manifest: dict[str, Any]) -> None:
    models = client.get("/v1/models").json()["models"]
    assert [m["name"] for m in models] == REPOSITORY_MODELS
    tasks = {m["name"]: m["task"] for m in models}
    assert tasks[MODEL_NAME] == "forecast" and tasks["sst2-bilstm"] == "sentiment"
    assert tasks["lstm-next-step"] == "tensor"
    assert all(m["evaluation"] for m in models if m["task"] != "tensor")
    info = next(m for m in models if m["name"] == MODEL_NAME)
    assert info["version"] == manifest["version"]
    assert info["task"] == "forecast"
    assert info["state"] == "ready" and info["error"] is None
    assert info["provider"] == "CPUExecutionProvider"
    assert info["model_sha256"] == manifest["files"]["model.onnx"]["sha256"]
    assert info["parameters"] == manifest["parameters"]
    assert info["evaluation"] == manifest["evaluation"]
    assert info["inputs"] == manifest["inputs"]


def test_get_model(client: TestClient) -> None:
    assert client.get(f"/v1/models/{MODEL_NAME}").json()["name"] == MODEL_NAME
    assert_error(client.get("/v1/models/nope"), 404, loc=["path", "name"], error_type="model_not_found")


def test_empty_repository_is_not_ready(tmp_path: Any) -> None:
    with TestClient(create_app(make_settings(tmp_path))) as client:
        assert_error(client.get("/readyz"), 503, error_type="not_ready")
        assert client.get("/healthz").status_code == 200
        assert_error(client.post("/v1/forecast", json={"series": [{"values": [1.0]}]}), 503)


def test_create_app_loads_nothing_until_lifespan() -> None:
    app = create_app(make_settings(MODELS))
    assert not hasattr(app.state, "registry")


def test_openapi_documents_bodies_and_errors(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    post = schema["paths"]["/v1/forecast"]["post"]
    assert set(post["responses"]) >= {"200", "400", "413", "415", "422", "503", "504"}
    assert post["responses"]["422"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ErrorResponse"
    )
    assert "ForecastResponse" in post["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert "404" in schema["paths"]["/v1/models/{name}"]["get"]["responses"]
    assert "503" in schema["paths"]["/readyz"]["get"]["responses"]
    point = schema["components"]["schemas"]["SeriesForecastOut"]["properties"]["point"]
    assert "median" in point["description"]
