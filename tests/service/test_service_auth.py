"""Optional API keys: which routes need one, how a key is sent, the 401 shape, and no key in any log."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from svc_helpers import MODEL_NAME, REPO, assert_error, make_settings, read_m4_series

from service.app import create_app

KEY = "sk-test-7f3a9c1e5b2d4f60a8e1"
OTHER_KEY = "sk-second-key-000111222333"
WRONG_KEY = "sk-wrong-9d8c7b6a5f4e3d2c1b0a"


def _forecast_body() -> dict[str, Any]:
    ((_, values),) = read_m4_series(1)
    return {"series": [{"id": "s", "values": values}]}


SENTIMENT_BODY = {"texts": ["a warm, funny and moving film"]}


@pytest.fixture(scope="module")
def auth_client() -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(api_keys=[KEY, OTHER_KEY]))) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def strict_client() -> Iterator[TestClient]:
    settings = make_settings(api_keys=[KEY], auth_protect_health_and_metrics=True)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


PROTECTED = [
    ("POST", "/v1/forecast"),
    ("POST", "/v1/sentiment"),
    ("GET", "/v1/models"),
    ("GET", f"/v1/models/{MODEL_NAME}"),
    ("POST", f"/v1/models/{MODEL_NAME}/reload"),
]


def _send(client: TestClient, method: str, path: str, headers: dict[str, str]) -> httpx.Response:
    body: dict[str, Any] | None = None
    if path == "/v1/forecast":
        body = _forecast_body()
    elif path == "/v1/sentiment":
        body = SENTIMENT_BODY
    return client.request(method, path, json=body, headers=headers)


def _assert_unauthorized(response: httpx.Response) -> dict[str, Any]:
    error = assert_error(response, 401, loc=["header", "authorization"], error_type="unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"
    for key in (KEY, OTHER_KEY, WRONG_KEY):
        assert key not in response.text
    return error


@pytest.mark.parametrize("method, path", PROTECTED)
def test_protected_routes_refuse_a_missing_key(auth_client: TestClient, method: str, path: str) -> None:
    error = _assert_unauthorized(_send(auth_client, method, path, {}))
    assert "missing" in error["message"]


@pytest.mark.parametrize("method, path", PROTECTED)
@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": f"Bearer {WRONG_KEY}"},
        {"X-API-Key": WRONG_KEY},
        {"Authorization": f"Bearer {KEY}x"},
        {"Authorization": f"Bearer {KEY[:-1]}"},
        {"Authorization": f"Basic {KEY}"},  # right key, wrong scheme
        {"Authorization": KEY},  # no scheme at all
    ],
)
def test_protected_routes_refuse_a_bad_key(
    auth_client: TestClient, method: str, path: str, headers: dict[str, str]
) -> None:
    _assert_unauthorized(_send(auth_client, method, path, headers))


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": f"Bearer {KEY}"},
        {"Authorization": f"bearer {KEY}"},  # the scheme is case-insensitive
        {"Authorization": f"Bearer {OTHER_KEY}"},
        {"X-API-Key": KEY},
        {"X-API-Key": OTHER_KEY},
    ],
)
@pytest.mark.parametrize("method, path", PROTECTED[:4])
def test_a_valid_key_in_either_header_is_accepted(
    auth_client: TestClient, method: str, path: str, headers: dict[str, str]
) -> None:
    response = _send(auth_client, method, path, headers)
    assert response.status_code == 200, response.text


def test_an_authenticated_request_still_gets_the_routes_own_errors(auth_client: TestClient) -> None:
    headers = {"X-API-Key": KEY}
    assert_error(auth_client.get("/v1/models/nope", headers=headers), 404)
    assert_error(auth_client.post("/v1/forecast", json={"series": []}, headers=headers), 422)


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/openapi.json"])
def test_health_metrics_and_schema_stay_open_by_default(auth_client: TestClient, path: str) -> None:
    assert auth_client.get(path).status_code == 200


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
def test_health_and_metrics_can_be_protected(strict_client: TestClient, path: str) -> None:
    _assert_unauthorized(strict_client.get(path))
    assert strict_client.get(path, headers={"Authorization": f"Bearer {KEY}"}).status_code == 200


def test_without_keys_nothing_needs_one(client: TestClient) -> None:
    assert client.get("/v1/models").status_code == 200
    assert client.post("/v1/sentiment", json=SENTIMENT_BODY).status_code == 200


def test_openapi_declares_401_and_the_security_schemes(auth_client: TestClient) -> None:
    schema = auth_client.get("/openapi.json").json()
    schemes = schema["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {"type": "http", "scheme": "bearer"}
    assert schemes["apiKeyAuth"] == {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    for path, method in [
        ("/v1/forecast", "post"),
        ("/v1/sentiment", "post"),
        ("/v1/models", "get"),
        ("/v1/models/{name}", "get"),
    ]:
        operation = schema["paths"][path][method]
        assert "401" in operation["responses"], path
        assert operation["security"] == [{"bearerAuth": []}, {"apiKeyAuth": []}], path
    assert "security" not in schema["paths"]["/healthz"]["get"]


@pytest.mark.parametrize("keys", [[""], ["   "], [" padded"], [KEY, ""]])
def test_blank_keys_are_refused_without_echoing_the_others(keys: list[str]) -> None:
    with pytest.raises(ValueError) as info:
        make_settings(api_keys=keys)
    assert KEY not in str(info.value)


def test_settings_never_show_a_key() -> None:
    settings = make_settings(api_keys=[KEY])
    assert KEY not in repr(settings) and KEY not in str(settings)
    assert KEY not in settings.model_dump_json()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_keys_never_reach_the_logs(tmp_path: Any) -> None:
    """The real server at debug level, with uvicorn's access log: neither a good nor a bad key is logged."""
    port = _free_port()
    env = {
        **os.environ,
        "SEQSERVE_HOST": "127.0.0.1",
        "SEQSERVE_PORT": str(port),
        "SEQSERVE_WORKERS": "1",
        "SEQSERVE_PROVIDERS": "cpu",
        "SEQSERVE_MODEL_REPOSITORY": str(REPO / "models"),
        "SEQSERVE_LOG_LEVEL": "debug",
        "SEQSERVE_ACCESS_LOG": "true",
        "SEQSERVE_API_KEYS": f'["{KEY}", "{OTHER_KEY}"]',
    }
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "service"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            base = f"http://127.0.0.1:{port}"
            _wait_ready(base, proc)
            with httpx.Client(base_url=base, timeout=30) as http:
                ok = {"Authorization": f"Bearer {KEY}"}
                assert http.post("/v1/forecast", json=_forecast_body(), headers=ok).status_code == 200
                assert http.get("/v1/models", headers={"X-API-Key": OTHER_KEY}).status_code == 200
                assert http.get("/v1/models", headers={"X-API-Key": WRONG_KEY}).status_code == 401
                bad = {"Authorization": f"Bearer {WRONG_KEY}"}
                assert http.post("/v1/sentiment", json=SENTIMENT_BODY, headers=bad).status_code == 401
                assert http.get("/v1/models").status_code == 401
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
    text = log_path.read_text(errors="replace")
    # The access log is on and saw these requests, so the check below looked at real log lines.
    assert '"POST /v1/forecast HTTP/1.1" 200' in text, text[-2000:]
    assert '"GET /v1/models HTTP/1.1" 401' in text, text[-2000:]
    for key in (KEY, OTHER_KEY, WRONG_KEY):
        assert key not in text


def _wait_ready(base: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the service exited during startup"
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError("the service did not become ready")
