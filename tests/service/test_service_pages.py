"""The playground, offline docs, model cards and report files over HTTP (in process, real models)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from svc_helpers import MODELS, make_settings

from service.app import create_app
from service.http.pages import STATIC_DIR

URL = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']|(?:fetch|import)\s*\(?\s*["']([^"']+)["']""")


def _own_assets() -> list[Path]:
    return [
        p for p in STATIC_DIR.rglob("*") if p.suffix in {".html", ".js", ".css"} and "vendor" not in p.parts
    ]


def test_playground_and_docs_reference_only_this_service(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    docs = client.get("/docs")
    assert docs.status_code == 200
    for text in [page.text, docs.text, *(p.read_text() for p in _own_assets())]:
        for match in URL.finditer(text):
            target = match.group(1) or match.group(2)
            assert target.startswith(("/", "./", "#")), target
    # Every asset the two pages name is served.
    for text in (page.text, docs.text):
        for match in URL.finditer(text):
            target = match.group(1) or match.group(2)
            if target.startswith("/static/"):
                assert client.get(target).status_code == 200, target


def test_docs_use_the_vendored_swagger_ui_and_no_validator(client: TestClient) -> None:
    html = client.get("/docs").text
    assert "/static/vendor/swagger-ui/swagger-ui-bundle.js" in html
    assert '"validatorUrl": null' in html
    assert client.get("/redoc").status_code == 404


@pytest.mark.parametrize(
    "path", ["/static/../config.py", "/static/vendor/uplot/README.md", "/static/nope.js"]
)
def test_static_serves_only_its_own_files(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 404


def test_openapi_has_a_working_example_for_each_prediction(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    for path, schema_name in [("/v1/forecast", "ForecastRequest"), ("/v1/sentiment", "SentimentRequest")]:
        example = schema["components"]["schemas"][schema_name]["examples"][0]
        response = client.post(path, json=example)
        assert response.status_code == 200, response.text
    forecast = schema["components"]["schemas"]["ForecastRequest"]["examples"][0]
    assert len(forecast["series"][0]["values"]) >= 168


@pytest.fixture(scope="module")
def examples_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """The models the examples name, on their own (other models in models/ may be mid-training)."""
    repo = tmp_path_factory.mktemp("repo")
    for name in ("m4-hourly", "sst2-bilstm", "shakespeare-char"):
        (repo / name).mkdir()
        (repo / name / "1").symlink_to(MODELS / name / "1", target_is_directory=True)
    with TestClient(create_app(make_settings(repo))) as test_client:
        yield test_client


def test_every_operation_runs_with_its_examples(examples_client: TestClient) -> None:
    """What "Try it out" sends with the documented examples, for every operation but load/unload."""
    client = examples_client
    schema = client.get("/openapi.json").json()
    served_tasks = {m["task"] for m in client.get("/v1/models").json()["models"] if m["state"] == "ready"}
    tried = []
    for path, operations in schema["paths"].items():
        if path.startswith("/v2/repository/models/") or (path.endswith("/infer") and path.startswith("/v2/")):
            continue  # an example would unload a served model; V2 inference documents its own body
        for method, operation in operations.items():
            url = path
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path":
                    assert "example" in parameter, (method, path, parameter["name"])
                    url = url.replace("{" + parameter["name"] + "}", str(parameter["example"]))
            kwargs = {}
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if body is not None and operation["requestBody"].get("required"):
                ref = body["schema"].get("$ref", "")
                named = schema["components"]["schemas"].get(ref.rsplit("/", 1)[-1], {}) if ref else {}
                example = body.get("example", (named.get("examples") or [None])[0])
                assert example is not None, (method, path)
                kwargs["json"] = example
            if path == "/v1/classify" and "classify" not in served_tasks:
                # No classify model in this repository: the documented "no model for this task" answer.
                assert client.request(method.upper(), url, **kwargs).status_code == 503
                continue
            response = client.request(method.upper(), url, **kwargs)
            assert response.status_code < 300, (method, url, response.text[:300])
            tried.append((method, path))
    assert len(tried) >= 20


def test_model_card_lists_evaluation_parity_serving_and_checksums(client: TestClient) -> None:
    card = client.get("/v1/models/m4-hourly/card").json()
    assert card["task"] == "forecast"
    assert {"model", "baselines", "published_owa"} <= set(card["evaluation"])
    assert card["parity"]["max_abs_diff"] >= 0
    assert card["serving"]["preferred_batch_size"] >= 1
    files = {f["name"]: f for f in card["files"]}
    assert files["model.onnx"]["sha256"] == card["model_sha256"]
    assert files["model.onnx"]["url"] is None
    assert "history" not in card["training"]


def test_file_route_never_serves_weights(client: TestClient) -> None:
    for name in ["model.onnx", "torch_state.pt", "model.json", "../../README.md"]:
        response = client.get(f"/v1/models/m4-hourly/versions/1/files/{name}")
        assert response.status_code == 404, name
    assert client.get("/v1/models/m4-hourly/versions/99/files/report.md").status_code == 404


def test_with_api_keys_pages_are_open_and_the_api_is_not() -> None:
    with TestClient(create_app(make_settings(api_keys=["k1"]))) as keyed:
        for path in ["/", "/docs", "/openapi.json", "/static/playground/main.js", "/favicon.ico"]:
            assert keyed.get(path).status_code == 200, path
        assert keyed.get("/v1/models/m4-hourly/card").status_code == 401
        assert keyed.get("/v1/models/m4-hourly/card", headers={"X-API-Key": "k1"}).status_code == 200


def test_report_files_listed_in_the_manifest_are_served(client: TestClient) -> None:
    card = client.get("/v1/models/m4-hourly/card").json()
    assert card["report"] == "/v1/models/m4-hourly/versions/1/files/report.md"
    report = client.get(card["report"])
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/markdown")
    pictures = [f for f in card["files"] if f["name"].endswith(".png")]
    assert len(pictures) == 4
    for picture in pictures:
        response = client.get(picture["url"])
        assert response.status_code == 200 and response.headers["content-type"] == "image/png"
        assert len(response.content) == picture["bytes"]
        assert f"]({picture['name']})" in report.text
