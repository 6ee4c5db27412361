"""Property tests for the request validators, through HTTP: hostile JSON never gets a 5xx.

Every answer is a 200, or a 4xx with the error shape {"error": {"type", "message", "details": [{"loc",
"msg"}]}}. What is accepted is used as sent: -0.0 and subnormals are finite numbers and are accepted
(values reach the model as float32, like every other value); ids come back byte for byte; a lone
surrogate is refused with a field error rather than replaced.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from svc_helpers import assert_error, read_m4_series

H = {"content-type": "application/json"}
FUZZ = settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
GOOD = read_m4_series(1)[0][1][-200:]
GOOD_RAW = ",".join(repr(v) for v in GOOD)

# Any JSON value: text includes NUL, RTL marks, combining characters and lone surrogates (json.dumps
# writes those as "\ud800" escapes, which is how a client would send them).
json_text = st.text(max_size=8) | st.sampled_from(["\x00", "\u200f", "\u202e", "e\u0301", "\ud800", "\udfff"])
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**63 - 2, max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([1e308, -1e308, 5e-324, -5e-324, -0.0, 3.5e38, -3.5e38])
    | json_text
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(json_text, inner, max_size=4),
    max_leaves=12,
)


def check(response: Any) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert_error(response, response.status_code)
    else:
        assert response.status_code == 200, response.text
        assert isinstance(response.json(), dict)


def post(client: TestClient, path: str, body: Any) -> Any:
    # ensure_ascii keeps lone surrogates as \ud800 escapes (raw, they are not encodable as UTF-8).
    return client.post(path, content=json.dumps(body, ensure_ascii=True).encode(), headers=H)


FORECAST_FIELDS = ["model", "horizon", "quantiles", "series", "series.id", "series.values", "series.values.0"]


@FUZZ
@given(field=st.sampled_from(FORECAST_FIELDS), value=json_values)
def test_forecast_any_json_in_any_field(client: TestClient, field: str, value: Any) -> None:
    body: dict[str, Any] = {"series": [{"id": "s", "values": list(GOOD)}]}
    if field == "series.values.0":
        body["series"][0]["values"][-1] = value
    elif field.startswith("series."):
        body["series"][0][field.split(".")[1]] = value
    else:
        body[field] = value
    check(post(client, "/v1/forecast", body))


@FUZZ
@given(field=st.sampled_from(["model", "texts", "texts.0", "extra"]), value=json_values)
def test_sentiment_any_json_in_any_field(client: TestClient, field: str, value: Any) -> None:
    body: dict[str, Any] = {"texts": ["a gripping film"]}
    if field == "texts.0":
        body["texts"][0] = value
    else:
        body[field] = value
    check(post(client, "/v1/sentiment", body))


@FUZZ
@given(body=json_values)
@pytest.mark.parametrize("path", ["/v1/forecast", "/v1/sentiment"])
def test_any_json_body(client: TestClient, path: str, body: Any) -> None:
    check(post(client, path, body))


@FUZZ
@given(text=st.text(min_size=1, max_size=300))
def test_sentiment_any_text(client: TestClient, text: str) -> None:
    check(post(client, "/v1/sentiment", {"texts": [text]}))


@FUZZ
@given(label=st.text(max_size=200))
def test_forecast_id_echoed_unchanged(client: TestClient, label: str) -> None:
    response = post(client, "/v1/forecast", {"series": [{"id": label, "values": list(GOOD)}]})
    check(response)
    if any(0xD800 <= ord(c) <= 0xDFFF for c in label):
        assert_error(response, 422, loc=["body", "series", 0, "id"])
    else:
        assert response.status_code == 200, response.text
        assert response.json()["forecasts"][0]["id"] == label


# Raw JSON number tokens, written into the request text as they are (not via a Python float).
HUGE = ["1e308", "-1e308", str(2**64), str(-(2**64)), "1" + "0" * 400, "-1" + "0" * 400, "1e400", "-1e400"]
TINY = ["5e-324", "-5e-324", "2.2250738585072014e-308", "1e-400", "-0.0", "-0", "0e0"]


@pytest.mark.parametrize("number", HUGE + TINY)
def test_raw_numbers_as_series_value(client: TestClient, number: str) -> None:
    raw = '{"series":[{"values":[' + GOOD_RAW + "," + number + "]}]}"
    response = client.post("/v1/forecast", content=raw, headers=H)
    check(response)
    if number in TINY:
        # Finite and tiny: accepted as sent (float32 rounds it, as it rounds every value).
        assert response.status_code == 200, response.text
    elif abs(float(number)) > 3.4028234663852886e38:
        # Beyond float32 (or float64): refused, pointing at the value.
        error = assert_error(response, 422)
        assert error["details"][0]["loc"][:4] == ["body", "series", 0, "values"], error
    else:
        assert response.status_code == 200, response.text  # 2**64 fits in float32


@pytest.mark.parametrize("number", [*HUGE, *TINY, "0", "49", "1.0", "true", "null", '"1"'])
def test_raw_numbers_as_horizon(client: TestClient, number: str) -> None:
    raw = '{"horizon":' + number + ',"series":[{"values":[' + GOOD_RAW + "]}]}"
    response = client.post("/v1/forecast", content=raw, headers=H)
    if number == "null":
        assert response.status_code == 200
    else:
        # Integers only (strict: no 1.0, no true), 1..the model's horizon.
        assert_error(response, 422, loc=["body", "horizon"])


@pytest.mark.parametrize(
    "number", [*HUGE, *TINY, "0.5000000000000001", "0.4999999999999999", "true", '"0.5"']
)
def test_raw_numbers_as_quantile(client: TestClient, number: str) -> None:
    raw = '{"quantiles":[' + number + '],"series":[{"values":[' + GOOD_RAW + "]}]}"
    response = client.post("/v1/forecast", content=raw, headers=H)
    # Only exact members of the model's quantiles are accepted; nothing is rounded onto one.
    assert_error(response, 422, loc=["body", "quantiles", 0])


def test_negative_zero_and_subnormals_are_accepted_as_sent(client: TestClient) -> None:
    values = [*GOOD[:-3], -0.0, 5e-324, -5e-324]
    response = post(client, "/v1/forecast", {"series": [{"values": values}]})
    assert response.status_code == 200, response.text
    assert response.json()["forecasts"][0]["context_length_used"] == len(values)


UNICODE = {
    "nul": "a\x00b",
    "rtl": "\u200fgood\u202e film\u202c",
    "combining": "e\u0301\u0301\u0301 good",
    "emoji_pair": "great \U0001f600",
    "bom": "\ufeffgood",
    "noncharacter": "good \uffff",
}


@pytest.mark.parametrize("text", UNICODE.values(), ids=UNICODE.keys())
def test_unicode_edge_cases_are_text(client: TestClient, text: str) -> None:
    response = post(client, "/v1/sentiment", {"texts": [text]})
    assert response.status_code == 200, response.text
    label = post(client, "/v1/forecast", {"series": [{"id": text, "values": list(GOOD)}]})
    assert label.status_code == 200 and label.json()["forecasts"][0]["id"] == text


@pytest.mark.parametrize(
    "raw",
    [
        b'{"texts":["\\ud800"]}',
        b'{"texts":["ok \\udfff"]}',
        b'{"texts":["\\udc00\\ud800"]}',  # reversed pair: two lone surrogates
        b'{"model":"\\ud800","texts":["x"]}',
    ],
)
def test_lone_surrogates_are_refused_by_field(client: TestClient, raw: bytes) -> None:
    response = client.post("/v1/sentiment", content=raw, headers=H)
    error = assert_error(response, 422)
    assert error["details"][0]["loc"][0] == "body"


@pytest.mark.parametrize(
    "raw",
    [
        b'{"\\ud800":1,"texts":["x"]}',  # a surrogate in an unknown key
        b'{"texts":["\xff\xfe"]}',  # not UTF-8 at all
        b'{"texts":["\xed\xa0\x80"]}',  # a surrogate encoded as UTF-8 bytes (invalid UTF-8)
        b'{"texts":["a\x00b"]}',  # a raw control character inside a string (invalid JSON)
    ],
)
def test_undecodable_text_is_a_client_error(client: TestClient, raw: bytes) -> None:
    check(client.post("/v1/sentiment", content=raw, headers=H))
    assert client.post("/v1/sentiment", content=raw, headers=H).status_code in (400, 422)


def test_very_long_strings(client: TestClient) -> None:
    at_limit = post(client, "/v1/sentiment", {"texts": ["a " * 2500]})
    assert at_limit.status_code == 200 and at_limit.json()["results"][0]["truncated"] is True
    assert_error(post(client, "/v1/sentiment", {"texts": ["a" * 5001]}), 422, loc=["body", "texts", 0])
    long_id = "\u202e" * 100_000  # 300 kB of RTL marks, under the 1 MiB body limit
    response = post(client, "/v1/forecast", {"series": [{"id": long_id, "values": list(GOOD)}]})
    assert response.status_code == 200 and response.json()["forecasts"][0]["id"] == long_id
    check(post(client, "/v1/forecast", {"model": "m" * 500_000, "series": [{"values": list(GOOD)}]}))
    check(client.get("/v1/models/" + "a" * 50_000))


@pytest.mark.parametrize("depth", [100, 1_000, 10_000, 100_000])
@pytest.mark.parametrize("closed", [False, True])
@pytest.mark.parametrize(
    ("path", "prefix", "suffix"),
    [
        ("/v1/forecast", b"", b""),
        ("/v1/forecast", b'{"series":[{"values":', b"}]}"),
        ("/v1/sentiment", b'{"texts":', b"}"),
        ("/v1/sentiment", b'{"texts":["x"],"extra":', b"}"),
    ],
)
def test_deeply_nested_json(
    client: TestClient, path: str, prefix: bytes, suffix: bytes, depth: int, closed: bool
) -> None:
    raw = prefix + b"[" * depth + (b"]" * depth + suffix if closed else b"")
    response = client.post(path, content=raw, headers=H)
    check(response)
    assert response.status_code in (400, 413, 422)
    nested_objects = prefix + b'{"a":' * depth + (b"1" + b"}" * depth + suffix if closed else b"")
    check(client.post(path, content=nested_objects, headers=H))
