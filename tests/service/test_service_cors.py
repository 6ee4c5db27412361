"""CORS: off unless origins are configured; then exactly those origins, and preflights need no key."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from svc_helpers import make_settings

from service.app import create_app

ALLOWED = "https://dashboard.example"
KEY = "sk-cors-test-4b1d"

PREFLIGHT = {
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization, content-type",
}


@pytest.fixture(scope="module")
def cors_client() -> Iterator[TestClient]:
    settings = make_settings(cors_allow_origins=[ALLOWED], api_keys=[KEY])
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def test_no_cors_headers_by_default(client: TestClient) -> None:
    preflight = client.options("/v1/forecast", headers={"Origin": ALLOWED, **PREFLIGHT})
    assert "access-control-allow-origin" not in preflight.headers
    simple = client.get("/v1/models", headers={"Origin": ALLOWED})
    assert simple.status_code == 200
    assert "access-control-allow-origin" not in simple.headers


def test_preflight_from_a_configured_origin_is_allowed(cors_client: TestClient) -> None:
    # A preflight never carries the key, so CORS answers it before authentication.
    response = cors_client.options("/v1/forecast", headers={"Origin": ALLOWED, **PREFLIGHT})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ALLOWED
    assert "POST" in response.headers["access-control-allow-methods"]
    allowed_headers = response.headers["access-control-allow-headers"].lower()
    assert "authorization" in allowed_headers and "x-api-key" in allowed_headers


def test_other_origins_get_no_cors_headers(cors_client: TestClient) -> None:
    other = "https://evil.example"
    preflight = cors_client.options("/v1/forecast", headers={"Origin": other, **PREFLIGHT})
    assert preflight.status_code == 400
    assert "access-control-allow-origin" not in preflight.headers
    simple = cors_client.get("/v1/models", headers={"Origin": other, "X-API-Key": KEY})
    assert "access-control-allow-origin" not in simple.headers


def test_actual_responses_carry_the_origin_including_401s(cors_client: TestClient) -> None:
    ok = cors_client.get("/v1/models", headers={"Origin": ALLOWED, "X-API-Key": KEY})
    assert ok.status_code == 200
    assert ok.headers["access-control-allow-origin"] == ALLOWED
    # The browser can read why it was refused.
    refused = cors_client.get("/v1/models", headers={"Origin": ALLOWED})
    assert refused.status_code == 401
    assert refused.headers["access-control-allow-origin"] == ALLOWED
