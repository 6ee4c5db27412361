"""Every bad input gets a 4xx with the error shape and a loc pointing at the offending field."""

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from svc_helpers import MODELS, assert_error, make_settings

from service.app import create_app

JSON = {"content-type": "application/json"}
GOOD = [float(100 + (i % 24)) for i in range(200)]


def _good_values() -> str:
    return ", ".join(str(v) for v in GOOD)


def _post_raw(client: TestClient, raw: bytes) -> Any:
    return client.post("/v1/forecast", content=raw, headers=JSON)


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity", "null"])
def test_non_finite_or_null_value(client: TestClient, token: str) -> None:
    raw = f'{{"series": [{{"values": [{_good_values()}, {token}]}}]}}'.encode()
    assert_error(_post_raw(client, raw), 422, loc=["body", "series", 0, "values", 200])


def test_nan_quantile(client: TestClient) -> None:
    raw = f'{{"quantiles": [NaN], "series": [{{"values": [{_good_values()}]}}]}}'.encode()
    assert_error(_post_raw(client, raw), 422, loc=["body", "quantiles", 0])


def test_float32_overflow(client: TestClient) -> None:
    response = client.post("/v1/forecast", json={"series": [{"values": [*GOOD, 1e300]}]})
    assert_error(response, 422, loc=["body", "series", 0, "values", 200], error_type="invalid_input")


def test_series_too_short(client: TestClient, params: dict) -> None:
    values = GOOD[: params["min_context_length"] - 1]
    response = client.post("/v1/forecast", json={"series": [{"values": GOOD}, {"values": values}]})
    error = assert_error(response, 422, loc=["body", "series", 1, "values"], error_type="invalid_input")
    assert str(params["min_context_length"]) in error["details"][0]["msg"]


def test_empty_values(client: TestClient) -> None:
    assert_error(
        client.post("/v1/forecast", json={"series": [{"values": []}]}), 422, ["body", "series", 0, "values"]
    )


def test_empty_series_list(client: TestClient) -> None:
    assert_error(client.post("/v1/forecast", json={"series": []}), 422, loc=["body", "series"])


def test_missing_series(client: TestClient) -> None:
    assert_error(client.post("/v1/forecast", json={"horizon": 3}), 422, loc=["body", "series"])


@pytest.fixture(scope="module")
def small_client() -> Iterator[TestClient]:
    settings = make_settings(MODELS, max_series_per_request=2, max_series_length=500)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def test_too_many_series(small_client: TestClient) -> None:
    body = {"series": [{"values": GOOD}] * 3}
    assert_error(small_client.post("/v1/forecast", json=body), 422, loc=["body", "series"])


def test_series_too_long(small_client: TestClient) -> None:
    body = {"series": [{"values": GOOD * 3}]}
    assert_error(small_client.post("/v1/forecast", json=body), 422, loc=["body", "series", 0, "values"])


@pytest.mark.parametrize("horizon", [0, -1])
def test_horizon_below_one(client: TestClient, horizon: int) -> None:
    response = client.post("/v1/forecast", json={"horizon": horizon, "series": [{"values": GOOD}]})
    assert_error(response, 422, loc=["body", "horizon"])


def test_horizon_beyond_model(client: TestClient, params: dict) -> None:
    response = client.post(
        "/v1/forecast", json={"horizon": params["horizon"] + 1, "series": [{"values": GOOD}]}
    )
    assert_error(response, 422, loc=["body", "horizon"], error_type="invalid_input")


def test_unknown_model(client: TestClient) -> None:
    response = client.post("/v1/forecast", json={"model": "nope", "series": [{"values": GOOD}]})
    assert_error(response, 422, loc=["body", "model"], error_type="invalid_input")


def test_unknown_quantile(client: TestClient) -> None:
    response = client.post("/v1/forecast", json={"quantiles": [0.5, 0.33], "series": [{"values": GOOD}]})
    assert_error(response, 422, loc=["body", "quantiles", 1], error_type="invalid_input")


def test_duplicate_quantile(client: TestClient) -> None:
    response = client.post("/v1/forecast", json={"quantiles": [0.1, 0.1], "series": [{"values": GOOD}]})
    assert_error(response, 422, loc=["body", "quantiles", 1])


@pytest.mark.parametrize(
    "body, loc",
    [
        ({"series": "abc"}, ["body", "series"]),
        ({"series": [{"values": "1,2,3"}]}, ["body", "series", 0, "values"]),
        ({"series": [{"values": ["1", "2"]}]}, ["body", "series", 0, "values", 0]),
        ({"series": [{"values": [True]}]}, ["body", "series", 0, "values", 0]),
        ({"series": [{"values": GOOD, "id": 7}]}, ["body", "series", 0, "id"]),
        ({"series": [{"values": GOOD}], "horizon": 1.5}, ["body", "horizon"]),
        ({"series": [{"values": GOOD}], "horizon": "12"}, ["body", "horizon"]),
        ({"series": [{"values": GOOD}], "quantiles": 0.5}, ["body", "quantiles"]),
        ({"series": [{"values": GOOD}], "model": 1}, ["body", "model"]),
        ({"series": [[1.0, 2.0]]}, ["body", "series", 0]),
    ],
)
def test_wrong_json_types(client: TestClient, body: dict, loc: list) -> None:
    assert_error(client.post("/v1/forecast", json=body), 422, loc=loc, error_type="validation_error")


def test_body_is_a_list(client: TestClient) -> None:
    assert_error(client.post("/v1/forecast", json=[1, 2]), 422, loc=["body"])


@pytest.mark.parametrize("raw", [b"{not json", b'{"series": [', b"", b"\xff\xfe", b"[" * 100_000])
def test_body_not_json(client: TestClient, raw: bytes) -> None:
    response = _post_raw(client, raw)
    assert 400 <= response.status_code < 500
    error = assert_error(response, response.status_code, loc=["body"])
    if raw == b"{not json":
        assert response.status_code == 400 and error["type"] == "malformed_json"


def test_wrong_content_type(client: TestClient) -> None:
    response = client.post("/v1/forecast", content=b'{"series": []}', headers={"content-type": "text/plain"})
    assert_error(response, 415, loc=["body"], error_type="unsupported_media_type")


@pytest.mark.parametrize(
    "body, loc",
    [
        ({"series": [{"values": GOOD}], "horizn": 3}, ["body", "horizn"]),
        ({"series": [{"values": GOOD, "timestamps": [1]}]}, ["body", "series", 0, "timestamps"]),
    ],
)
def test_unknown_field(client: TestClient, body: dict, loc: list) -> None:
    assert_error(client.post("/v1/forecast", json=body), 422, loc=loc)


def test_timeout_is_504() -> None:
    settings = make_settings(MODELS, request_timeout_seconds=1e-9)
    with TestClient(create_app(settings)) as client:
        response = client.post("/v1/forecast", json={"series": [{"values": GOOD}]})
        assert_error(response, 504, error_type="timeout")


def test_unknown_route_and_method(client: TestClient) -> None:
    assert_error(client.get("/v1/nope"), 404, error_type="not_found")
    assert_error(client.get("/v1/forecast"), 405, error_type="method_not_allowed")


@pytest.mark.parametrize("field", ["id", "model"])
def test_lone_surrogate_in_a_string_field_is_a_422_not_a_500(client: TestClient, field: str) -> None:
    # json.dumps cannot write a lone surrogate portably, so send the escape as raw bytes.
    where = '"id": "a\\ud800", ' if field == "id" else ""
    model = '"model": "\\udfff", ' if field == "model" else ""
    raw = f'{{{model}"series": [{{{where}"values": [{_good_values()}]}}]}}'.encode()
    loc = ["body", "series", 0, "id"] if field == "id" else ["body", "model"]
    assert_error(_post_raw(client, raw), 422, loc=loc)


def test_queue_backpressure_is_a_503_with_retry_after() -> None:
    # 11 rows cannot fit a queue bounded at 10, so the batcher refuses them before any inference.
    with TestClient(create_app(make_settings(MODELS, max_queue_rows=10))) as small_queue:
        series = [{"values": GOOD} for _ in range(11)]
        response = small_queue.post("/v1/forecast", json={"series": series})
        error = assert_error(response, 503, error_type="overloaded")
        assert response.headers["retry-after"] == "1"
        assert "max_queue_rows=10" in error["message"]
        assert small_queue.post("/v1/forecast", json={"series": series[:10]}).status_code == 200
