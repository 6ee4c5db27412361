"""413 for bodies over max_body_bytes, declared or streamed."""

import json
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from svc_helpers import MODELS, assert_error, make_settings

from service.app import create_app

LIMIT = 4096
GOOD = {"series": [{"values": [float(i % 24) for i in range(200)]}]}


@pytest.fixture(scope="module")
def app() -> FastAPI:
    return create_app(make_settings(MODELS, max_body_bytes=LIMIT))


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield http


pytestmark = pytest.mark.anyio


async def test_under_limit_is_served(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/forecast", json=GOOD)
    assert response.status_code == 200


async def test_content_length_over_limit(client: httpx.AsyncClient) -> None:
    body = b'{"series": [{"values": [' + b"1.0, " * LIMIT + b"1.0]}]}"
    response = await client.post("/v1/forecast", content=body, headers={"content-type": "application/json"})
    assert_error(response, 413, loc=["body"], error_type="payload_too_large")


async def test_streamed_body_over_limit_stops_reading(client: httpx.AsyncClient) -> None:
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        yield b'{"series": [{"values": ['
        for _ in range(10_000):
            chunk = b"1.0, " * 200
            sent += len(chunk)
            yield chunk

    response = await client.post(
        "/v1/forecast", content=chunks(), headers={"content-type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    assert_error(response, 413, loc=["body"], error_type="payload_too_large")
    # The middleware stopped pulling chunks soon after the limit instead of buffering 10 MB.
    assert sent < LIMIT + 2 * 1000


async def test_streamed_body_under_limit_is_served(client: httpx.AsyncClient) -> None:
    payload = json.dumps(GOOD).encode()

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(payload), 100):
            yield payload[start : start + 100]

    response = await client.post(
        "/v1/forecast", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 200, response.text
