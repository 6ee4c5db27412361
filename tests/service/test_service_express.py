"""The express lane (service/http/express.py) routes as Starlette would, and hands on what it declines.

The lane is driven directly, over the real app's routes, registry and model, with a stand-in for the
rest of the app that records what reaches it: the stand-in is not the thing under test, the lane is.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from starlette.routing import Match
from starlette.types import Message, Receive, Scope, Send

import service.app as app_module
from service.http.express import ExpressLane, express_routes

Series = list[tuple[str, list[float]]]
ROUTERS = (
    app_module.router, app_module.v2_router, app_module.generate_router, app_module.classify_router,
    app_module.drift_router, app_module.v2_repository_router, app_module.model_card_router,
    app_module.pages_router,
)  # fmt: skip
OWN_ROUTES = [route for included in ROUTERS for route in included.routes]


def _scope(client: TestClient, method: str, path: str, content_type: bytes = b"application/json") -> Scope:
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "headers": [(b"host", b"test"), (b"content-type", content_type)], "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80), "state": {}, "app": client.app,
    }  # fmt: skip


class Rest:
    """Stands for the app behind the lane: records each request and the body it was given."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, bytes]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        self.seen.append((scope["path"], message.get("body", b"")))
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b""})


def _drive(lane: ExpressLane, scope: Scope, body: bytes) -> tuple[int, bytes]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    async def run() -> None:
        await lane(scope, receive, send)

    asyncio.run(run())
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    return status, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/forecast"), ("POST", "/v1/sentiment"), ("POST", "/v2/models/m4-hourly/infer"),
        ("POST", "/v2/models/m4-hourly/versions/1/infer"), ("POST", "/v2/repository/models/x/load"),
        ("GET", "/v1/forecast"), ("GET", "/v2/models/m4-hourly"), ("POST", "/v1/models/m4-hourly/reload"),
        ("POST", "/v1/generate"), ("GET", "/metrics"), ("POST", "/v2/models/a/b/infer"),
    ],
)  # fmt: skip
def test_the_lane_takes_a_request_only_where_the_router_would_pick_the_same_route(
    client: TestClient, method: str, path: str
) -> None:
    scope = _scope(client, method, path)
    router_pick = next((r for r in OWN_ROUTES if r.matches(scope)[0] is Match.FULL), None)
    lane_pick = next((r for r, _ in express_routes(OWN_ROUTES) if r.matches(scope)[0] is Match.FULL), None)
    assert lane_pick is None or lane_pick is router_pick
    # The inference routes are in the lane; reads, admin and streaming routes are not.
    hot = method == "POST" and (path.startswith(("/v1/forecast", "/v1/sentiment", "/v2/repository/")) or (
        path.endswith("/infer") and path.count("/") in (4, 6)
    ))  # fmt: skip
    assert (lane_pick is not None) == hot


def test_a_valid_forecast_is_answered_in_the_lane_without_reaching_the_rest(
    client: TestClient, m4_series: Series
) -> None:
    rest = Rest()
    lane = ExpressLane(rest, OWN_ROUTES)
    body = orjson.dumps({"series": [{"id": "a", "values": m4_series[0][1]}], "horizon": 4})
    status, answer = _drive(lane, _scope(client, "POST", "/v1/forecast"), body)
    assert status == 200 and rest.seen == []
    forecast: dict[str, Any] = orjson.loads(answer)["forecasts"][0]
    # The same answer as the whole app gives over HTTP.
    over_http = client.post("/v1/forecast", content=body, headers={"Content-Type": "application/json"})
    assert forecast == over_http.json()["forecasts"][0]
    assert forecast["id"] == "a" and len(forecast["point"]) == 4


def test_what_the_lane_declines_reaches_the_rest_with_the_body_it_sent(client: TestClient) -> None:
    rest = Rest()
    lane = ExpressLane(rest, OWN_ROUTES)
    for body, content_type in (
        (b'{"series": [{"values": [true]}]}', b"application/json"),  # the schema refuses it
        (b"{not json", b"application/json"),
        (b'{"texts": ["fine"]}', b"text/plain"),  # not plain JSON: FastAPI decides
    ):
        status, _ = _drive(lane, _scope(client, "POST", "/v1/sentiment", content_type), body)
        assert status == 299 and rest.seen[-1] == ("/v1/sentiment", body)
    _drive(lane, _scope(client, "GET", "/metrics"), b"")
    assert rest.seen[-1] == ("/metrics", b"")


def test_domain_errors_in_the_lane_get_the_apps_error_bodies(client: TestClient, m4_series: Series) -> None:
    rest = Rest()
    lane = ExpressLane(rest, OWN_ROUTES)
    short = orjson.dumps({"series": [{"values": m4_series[0][1][:10]}]})
    status, answer = _drive(lane, _scope(client, "POST", "/v1/forecast"), short)
    assert status == 422 and rest.seen == []
    error = orjson.loads(answer)["error"]
    assert error["details"][0]["loc"] == ["body", "series", 0, "values"]
    # The V2 route answers in its protocol's shape, also from the lane.
    status, answer = _drive(lane, _scope(client, "POST", "/v2/models/nope/infer"), b"{}")
    assert status == 404 and "nope" in orjson.loads(answer)["error"]
    assert rest.seen == []
