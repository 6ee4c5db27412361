"""The direct lane: which requests may skip the middleware stack, and that skipping it changes nothing.

Three levels: the eligibility rules on plain scopes; uvicorn's real protocol class in process, fed raw
bytes, with a counting wrapper around the app to see which requests went through the stack; and the
deployed ``python -m service`` over a socket, where the same request is sent once as the lane takes it
and once chunked (which the lane leaves to the stack), and both answers must be the same bytes.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from protocol_helpers import exchange, metric, post, served
from svc_helpers import launched_service, make_settings, read_m4_series

from service.app import create_app
from service.http.direct import DirectLane, lane_of

KEY = "direct-lane-test-key"


def _body(series: list[float], **extra: Any) -> bytes:
    return json.dumps({"series": [{"id": "H1", "values": series}], **extra}).encode()


@pytest.fixture(scope="module")
def series() -> list[float]:
    return read_m4_series(1)[0][1][-336:]


def _scope(method: str, path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {"type": "http", "method": method, "path": path, "root_path": "", "headers": headers,
            "query_string": b""}  # fmt: skip


def _lane(m4_repository: Path, **settings: Any) -> DirectLane:
    lane = lane_of(create_app(make_settings(m4_repository, **settings)))
    assert lane is not None
    return lane


def test_only_requests_every_middleware_would_pass_untouched_take_the_lane(m4_repository: Path) -> None:
    lane = _lane(m4_repository, api_keys=[KEY], cors_allow_origins=["http://ui.example"], max_body_bytes=5000)
    full_app = object()
    json_type = (b"content-type", b"application/json")
    keyed = [json_type, (b"x-api-key", KEY.encode())]

    def takes(method: str, path: str, *headers: tuple[bytes, bytes]) -> bool:
        return lane.app_for(_scope(method, path, list(headers)), full_app) is not None  # type: ignore[arg-type]

    assert takes("POST", "/v1/forecast", *keyed, (b"content-length", b"5000"))
    assert takes("POST", "/v1/forecast", json_type, (b"authorization", f"Bearer {KEY}".encode()),
                 (b"content-length", b"10"))  # fmt: skip
    assert takes("POST", "/v1/sentiment", *keyed, (b"content-length", b"10"))
    assert takes("POST", "/v2/models/m4-hourly/infer", *keyed, (b"content-length", b"10"))
    # The body limit's 413, a chunked body, CORS, a missing or wrong key: the stack answers those.
    assert not takes("POST", "/v1/forecast", *keyed, (b"content-length", b"5001"))
    assert not takes("POST", "/v1/forecast", *keyed, (b"transfer-encoding", b"chunked"))
    assert not takes("POST", "/v1/forecast", *keyed)
    assert not takes(
        "POST", "/v1/forecast", *keyed, (b"content-length", b"10"), (b"origin", b"http://ui.example")
    )
    assert not takes("POST", "/v1/forecast", json_type, (b"content-length", b"10"))
    assert not takes("POST", "/v1/forecast", json_type, (b"x-api-key", b"wrong"), (b"content-length", b"10"))
    # Not an inference route, or not its method.
    assert not takes("GET", "/v1/forecast", *keyed, (b"content-length", b"0"))
    assert not takes("POST", "/v1/models", *keyed, (b"content-length", b"10"))
    assert not takes("POST", "/v1/nowhere", *keyed, (b"content-length", b"10"))


def test_remembered_matches_give_each_request_its_own_path_params_and_stay_bounded(
    m4_repository: Path,
) -> None:
    lane = _lane(m4_repository)
    headers = [(b"content-length", b"10")]

    def child(path: str) -> dict[str, Any] | None:
        call = lane.app_for(_scope("POST", path, headers), object())  # type: ignore[arg-type]
        return None if call is None else call._child

    first, second = child("/v2/models/m4-hourly/infer"), child("/v2/models/m4-hourly/infer")
    assert first is not None and second is not None
    assert first["path_params"] == second["path_params"] == {"name": "m4-hourly"}
    assert first["path_params"] is not second["path_params"]
    assert first["route"] is second["route"]
    other = child("/v2/models/sst2-bilstm/versions/2/infer")
    assert other is not None and other["path_params"] == {"name": "sst2-bilstm", "version": "2"}
    # Many distinct paths fill the memory; past it, paths are still matched, just not remembered.
    for n in range(600):
        assert child(f"/v2/models/m{n}/infer") is not None
        assert child(f"/v1/nowhere/{n}") is None
    assert len(lane._matched) <= 256
    late = child("/v2/models/late/infer")
    assert late is not None and late["path_params"] == {"name": "late"}
    assert child("/v1/forecast") is not None


def test_without_cors_an_origin_does_not_matter_and_the_lane_is_off_where_asked(m4_repository: Path) -> None:
    lane = _lane(m4_repository)
    headers = [(b"content-length", b"10"), (b"origin", b"http://elsewhere")]
    assert lane.app_for(_scope("POST", "/v1/forecast", headers), object()) is not None  # type: ignore[arg-type]
    for off in ({"direct_lane": False}, {"access_log": True}, {"opentelemetry": True}):
        assert lane_of(create_app(make_settings(m4_repository, **off))) is None, off


@pytest.mark.anyio
async def test_the_protocol_answers_inference_past_the_stack_and_everything_else_through_it(
    m4_repository: Path, series: list[float]
) -> None:
    from prometheus_client import REGISTRY, generate_latest

    labels = {s: f'route="/v1/forecast",status="{s}"' for s in ("200", "422")}
    before = generate_latest(REGISTRY).decode()
    async with served(m4_repository) as (counting, config):
        good = _body(series)
        # Valid forecast, then one the schema refuses and one the task refuses, pipelined with a health check.
        raw = b"".join(
            [
                post("/v1/forecast", good),
                post("/v1/forecast", b'{"series": [{"values": "x"}]}'),
                post("/v1/forecast", _body(series[:10])),
                b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n",
            ]
        )
        data = await exchange(config, raw, 4)
        statuses = re.findall(rb"HTTP/1\.1 (\d{3})", data)
        assert statuses == [b"200", b"422", b"422", b"200"], data[:2000]
        # Through the stack: the schema's refusal (the fast path declines it) and the health check.
        assert counting.calls == 2
        assert b'"loc":["body","series",0,"values"]' in data
        assert b"this model needs at least 168" in data

        closing = await exchange(config, post("/v1/forecast", good, "Connection: close"), 1)
        assert counting.calls == 2
        assert closing.startswith(b"HTTP/1.1 200 OK") and b"connection: close\r\n" in closing.lower()
    after = generate_latest(REGISTRY).decode()
    name = "seqserve_requests_total"
    counted = {s: metric(after, name, lab) - metric(before, name, lab) for s, lab in labels.items()}
    assert counted == {"200": 2.0, "422": 2.0}
    assert metric(after, "seqserve_requests_in_progress", 'route="/v1/forecast"') == 0.0


def _exchange_socket(port: int, raw: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(raw)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _without_date(response: bytes) -> bytes:
    return re.sub(rb"(?im)^date: .*\r\n", b"", response)


def _chunked(path: str, body: bytes) -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
    head += "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    return head.encode() + b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"


@pytest.fixture(scope="module")
def deployed(m4_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    tmp = tmp_path_factory.mktemp("deployed")
    (tmp / "models").symlink_to(m4_repository, target_is_directory=True)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    with launched_service(tmp, port, 1):
        yield port


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/forecast", "series"),
        ("/v1/forecast", "short"),
        ("/v1/forecast", "bad-horizon"),
        ("/v2/models/m4-hourly/infer", "v2"),
        ("/v2/models/nope/infer", "v2"),
    ],
)
def test_the_deployed_server_answers_the_lane_and_the_stack_with_the_same_bytes(
    deployed: int, series: list[float], path: str, body: str
) -> None:
    v2_input = {"name": "values", "shape": [1, 336], "datatype": "FP32", "data": series}
    payload = {
        "series": _body(series),
        "short": _body(series[:10]),
        "bad-horizon": _body(series, horizon=999),
        "v2": json.dumps({"inputs": [v2_input]}).encode(),
    }[body]
    direct = _exchange_socket(deployed, post(path, payload, "Connection: close"))
    stacked = _exchange_socket(deployed, _chunked(path, payload))
    assert direct.startswith(b"HTTP/1.1 ")
    assert _without_date(direct) == _without_date(stacked)
