"""The native lane (service/http/native.py): forecasts answered from the protocol's callbacks.

uvicorn's real protocol class runs in process with the real model, fed raw bytes. Each request is sent
to a server with the native lane on and to one with it off (where the direct lane's ASGI path answers),
and the answers must be the same bytes apart from the ``date`` header. A spy on the lane's ``begin``
records which requests the native lane took, so a test cannot pass by every request falling back.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client import REGISTRY, generate_latest
from protocol_helpers import Recorder, exchange, metric, post, served
from svc_helpers import read_m4_series
from uvicorn.config import Config
from uvicorn.server import ServerState

from service.http.direct import lane_of
from service.http.native import takes_headers
from service.http.protocol import DirectHttpToolsProtocol


@pytest.fixture(scope="module")
def series() -> list[float]:
    return read_m4_series(1)[0][1][-336:]


def _body(*series: list[float], **extra: Any) -> bytes:
    return json.dumps(
        {"series": [{"id": f"s{i}", "values": s} for i, s in enumerate(series)], **extra}
    ).encode()


@asynccontextmanager
async def _spied(m4_repository: Path, **settings: Any) -> AsyncIterator[tuple[Config, list[bool]]]:
    """A served app whose native lane records what its ``begin`` answered (empty when the lane is off)."""
    async with served(m4_repository, **settings) as (counting, config):
        taken: list[bool] = []
        lane = lane_of(counting.app)
        assert lane is not None
        native = lane.native
        if native is not None:
            begin = native.begin

            def spy(*args: Any) -> bool:
                taken.append(begin(*args))
                return taken[-1]

            native.begin = spy  # type: ignore[method-assign]
        yield config, taken


def _without_date(response: bytes) -> bytes:
    return re.sub(rb"(?im)^date: .*\r\n", b"", response)


@pytest.mark.anyio
async def test_native_answers_are_the_direct_lanes_bytes_and_only_plain_successes_are_taken(
    m4_repository: Path, series: list[float]
) -> None:
    requests = {
        "one series": _body(series),
        "two series of one length": _body(series, series[-200:] + series[:136]),
        "two lengths": _body(series, series[-200:]),
        "quantiles and horizon": _body(series, quantiles=[0.5, 0.9], horizon=12),
        "horizon beyond the model": _body(series, horizon=999),
        "too short": _body(series[:10]),
        "unknown model": _body(series, model="nope"),
        "not the schema": b'{"series": [{"values": "x"}]}',
        "over uvicorn's read buffer": _body(*[series] * 32),
    }
    answers: dict[bool, dict[str, bytes]] = {}
    taken_by: dict[bool, list[bool]] = {}
    for native in (True, False):
        async with _spied(m4_repository, native_lane=native) as (config, taken):
            answers[native] = {name: await exchange(config, post("/v1/forecast", body), 1)
                               for name, body in requests.items()}  # fmt: skip
            taken_by[native] = taken
    for name in requests:
        assert _without_date(answers[True][name]) == _without_date(answers[False][name]), name
    statuses = {name: answer[9:12] for name, answer in answers[True].items()}
    assert statuses == {
        "one series": b"200", "two series of one length": b"200", "two lengths": b"200",
        "quantiles and horizon": b"200", "horizon beyond the model": b"422", "too short": b"422",
        "unknown model": b"422", "not the schema": b"422", "over uvicorn's read buffer": b"200",
    }  # fmt: skip
    assert len(requests["over uvicorn's read buffer"]) > 65536
    # Taken: the successes from one queued item; declined: the rest (answered by the ASGI path); a body
    # over the read buffer is not even offered.
    assert taken_by[True] == [True, True, False, True, False, False, False, False]
    assert taken_by[False] == []


@pytest.mark.anyio
async def test_a_body_arriving_in_pieces_and_pipelined_requests_are_answered_in_order(
    m4_repository: Path, series: list[float]
) -> None:
    body = _body(series)
    request = post("/v1/forecast", body)
    head_end = request.index(b"\r\n\r\n") + 4
    async with _spied(m4_repository) as (config, taken):
        transport = Recorder()
        protocol = DirectHttpToolsProtocol(config=config, server_state=ServerState(), app_state={})
        protocol.connection_made(transport)
        protocol.data_received(request[:head_end])
        await asyncio.sleep(0.05)
        protocol.data_received(request[head_end : head_end + 100])
        await asyncio.sleep(0.05)
        assert transport.data == b""  # nothing is answered before the body is complete
        # The rest of the body, then two pipelined requests in the same packet: all three are answered,
        # in order; the middle one is declined (its schema fails) and goes to the ASGI path.
        bad = post("/v1/forecast", b'{"series": []}')
        protocol.data_received(
            request[head_end + 100 :] + bad + post("/v1/forecast", _body(series, horizon=3))
        )
        for _ in range(1000):
            if transport.data.count(b"HTTP/1.1 ") >= 3:
                break
            await asyncio.sleep(0.005)
        protocol.connection_lost(None)
    statuses = re.findall(rb"HTTP/1\.1 (\d{3})", bytes(transport.data))
    assert statuses == [b"200", b"422", b"200"]
    answers = bytes(transport.data).split(b"HTTP/1.1 ")[1:]
    assert answers[2].count(b",") < answers[0].count(b",")  # the third asked for 3 steps, not 48
    assert taken == [True, False, True]


@pytest.mark.anyio
async def test_an_exhausted_time_budget_is_a_504_counted_once_as_with_the_endpoint(
    m4_repository: Path, series: list[float]
) -> None:
    # A budget far below one model run; batches always go to the batch thread, so the timer fires first.
    settings = {"request_timeout_seconds": 1e-6, "inline_max_seconds": 0.0}
    route = 'route="/v1/forecast",status="504"'
    rejected = 'model="m4-hourly",reason="timeout"'
    answers: dict[bool, bytes] = {}
    for native in (True, False):
        before = generate_latest(REGISTRY).decode()
        async with _spied(m4_repository, native_lane=native, **settings) as (config, taken):
            answers[native] = await exchange(config, post("/v1/forecast", _body(series)), 1)
            await asyncio.sleep(0.2)  # the abandoned batch finishes meanwhile
        after = generate_latest(REGISTRY).decode()
        assert taken == ([True] if native else [])
        counters = (("seqserve_requests_total", route), ("seqserve_rejected_requests_total", rejected))
        for name, labels in counters:
            assert metric(after, name, labels) - metric(before, name, labels) == 1, name
        assert metric(after, "seqserve_requests_in_progress", 'route="/v1/forecast"') == 0
    assert answers[True].startswith(b"HTTP/1.1 504 ")
    assert _without_date(answers[True]) == _without_date(answers[False])


def test_offered_bodies_are_buffered_whole_without_expect_or_encoding_and_json_where_asked() -> None:
    def offered(*headers: tuple[bytes, bytes], json_only: bool = True) -> bool:
        return takes_headers({"headers": list(headers)}, json_only)

    json_type, length = (b"content-type", b"application/json"), (b"content-length", b"4000")
    assert offered(json_type, length)
    assert offered((b"content-type", b"Application/JSON; charset=utf-8"), length)
    assert not offered((b"content-type", b"application/vnd.seqserve+json"), length)
    assert not offered(length)
    assert not offered(json_type)
    assert not offered(json_type, (b"content-length", b"65537"))
    assert offered(json_type, (b"content-length", b"65536"))
    assert not offered(json_type, length, (b"expect", b"100-continue"))
    assert not offered(json_type, length, (b"content-encoding", b"gzip"))
    # Routes that read any body (V2) need no type, and not a JSON one.
    assert offered(length, json_only=False)
    assert offered((b"content-type", b"application/octet-stream"), length, json_only=False)
    assert not offered(length, (b"expect", b"100-continue"), json_only=False)
    # Repeated headers: the first counts.
    assert not offered((b"content-type", b"text/plain"), json_type, length)
    assert not offered(json_type, (b"content-length", b"70000"), length)


def _v2_binary(series: list[float], *, binary_output: bool) -> tuple[bytes, str]:
    tensor = np.asarray([series], dtype="<f4")
    header = json.dumps({
        "inputs": [{"name": "values", "datatype": "FP32", "shape": list(tensor.shape),
                    "parameters": {"binary_data_size": tensor.nbytes}}],
        "parameters": {"binary_data_output": binary_output},
    }).encode()  # fmt: skip
    return header + tensor.tobytes(), f"Inference-Header-Content-Length: {len(header)}"


@pytest.mark.anyio
async def test_v2_inference_of_a_forecast_model_is_answered_natively_with_the_endpoints_bytes(
    m4_repository: Path, series: list[float]
) -> None:
    v2_json = json.dumps({"id": "r1", "inputs": [{"name": "values", "shape": [1, 336], "datatype": "FP32",
                                                  "data": series}]}).encode()  # fmt: skip
    binary_out, binary_out_header = _v2_binary(series, binary_output=True)
    json_out, json_out_header = _v2_binary(series, binary_output=False)
    requests = {
        "json": ("/v2/models/m4-hourly/infer", v2_json, ()),
        "binary in and out": ("/v2/models/m4-hourly/versions/1/infer", binary_out, (binary_out_header,)),
        "binary in, json out": ("/v2/models/m4-hourly/infer", json_out, (json_out_header,)),
        "short series": ("/v2/models/m4-hourly/infer", v2_json.replace(b"336", b"335"), ()),
        "unloaded version": ("/v2/models/m4-hourly/versions/7/infer", v2_json, ()),
        "unknown model": ("/v2/models/nope/infer", v2_json, ()),
        "not a version": ("/v2/models/m4-hourly/versions/x/infer", v2_json, ()),
    }
    answers: dict[bool, dict[str, bytes]] = {}
    taken_by: dict[bool, list[bool]] = {}
    for native in (True, False):
        async with _spied(m4_repository, native_lane=native) as (config, taken):
            answers[native] = {name: await exchange(config, post(path, body, *extra), 1)
                               for name, (path, body, extra) in requests.items()}  # fmt: skip
            taken_by[native] = taken
    for name in requests:
        assert _without_date(answers[True][name]) == _without_date(answers[False][name]), name
    statuses = {name: answer[9:12] for name, answer in answers[True].items()}
    assert statuses == {
        "json": b"200", "binary in and out": b"200", "binary in, json out": b"200", "short series": b"400",
        "unloaded version": b"404", "unknown model": b"404", "not a version": b"400",
    }  # fmt: skip
    assert b"inference-header-content-length: " in answers[True]["binary in and out"].lower()
    assert taken_by[True] == [True, True, True, False, False, False, False]
    assert taken_by[False] == []
