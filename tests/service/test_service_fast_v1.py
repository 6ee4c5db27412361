"""The happy-path decoder of /v1 bodies: it takes exactly what the strict models accept, or declines.

Declined bodies go through pydantic as before (their errors are covered by test_service_api_errors);
here: what is declined, and that an answer is byte for byte the same whichever path a body took.
"""

from typing import Any

import numpy as np
import orjson
import pytest
from fastapi.testclient import TestClient

from service.http.fast_v1 import decode_forecast, decode_sentiment

Series = list[tuple[str, list[float]]]
# FastAPI parses any application/*+json body; the fast path only plain application/json.
SLOW_JSON = {"Content-Type": "application/vnd.seqserve+json"}


def _raw(body: Any) -> bytes:
    return orjson.dumps(body)


def test_happy_forecast_body_becomes_float64_rows(m4_series: Series) -> None:
    sid, values = m4_series[0]
    decoded = decode_forecast(_raw({"model": "m", "horizon": 3, "quantiles": [0.5], "series": [
        {"id": sid, "values": values}, {"values": values[:200]}]}))  # fmt: skip
    assert decoded is not None
    assert (decoded.model, decoded.query.horizon, decoded.query.quantiles) == ("m", 3, [0.5])
    first, second = decoded.query.series
    assert first.id == sid and second.id is None
    assert isinstance(first.values, np.ndarray) and first.values.dtype == np.float64
    assert np.array_equal(first.values, np.asarray(values)) and len(second.values) == 200


@pytest.mark.parametrize(
    "body",
    [
        {"series": [{"values": [1, 2.0]}]},  # an int: pydantic's call
        {"series": [{"values": [True, 2.0]}]},
        {"series": [{"values": [1.0], "extra": 1}]},
        {"series": [{"id": 3, "values": [1.0]}]},
        {"series": [{"id": "a"}]},
        {"series": []},
        {"series": {"values": [1.0]}},
        {"series": [[1.0]]},
        {"series": [{"values": [1.0]}], "unknown": 1},
        {"series": [{"values": [1.0]}], "horizon": 0},
        {"series": [{"values": [1.0]}], "horizon": 2.0},
        {"series": [{"values": [1.0]}], "horizon": True},
        {"series": [{"values": [1.0]}], "quantiles": [1]},
        {"series": [{"values": [1.0]}], "model": 1},
        {},
        [1.0],
    ],
)
def test_forecast_off_the_happy_path_is_declined(body: Any) -> None:
    assert decode_forecast(_raw(body)) is None


@pytest.mark.parametrize("raw", [b"", b"{", b'{"series": [{"values": [NaN]}]}', b'{"model": "\\ud800"}'])
def test_bodies_orjson_refuses_are_declined(raw: bytes) -> None:
    assert decode_forecast(raw) is None
    assert decode_sentiment(raw) is None


def test_sentiment_decoding() -> None:
    decoded = decode_sentiment(_raw({"model": None, "texts": ["good", "bad ."]}))
    assert decoded is not None and decoded.texts == ["good", "bad ."] and decoded.model is None
    for body in ({"texts": []}, {"texts": "good"}, {"texts": ["a", 1]}, {"texts": ["a"], "x": 1}, {}):
        assert decode_sentiment(_raw(body)) is None


def test_forecast_answer_is_the_same_on_both_paths(client: TestClient, m4_series: Series) -> None:
    values = [float(round(v)) for v in m4_series[0][1]]
    body = {"horizon": 24, "quantiles": [0.1, 0.5], "series": [{"id": "x", "values": values}]}
    assert decode_forecast(_raw(body)) is not None
    fast = client.post("/v1/forecast", content=_raw(body), headers={"Content-Type": "application/json"})
    slow = client.post("/v1/forecast", content=_raw(body), headers=SLOW_JSON)
    # The same numbers as ints: the decoder declines them, pydantic accepts them.
    as_ints = {**body, "series": [{"id": "x", "values": [int(v) for v in values]}]}
    assert decode_forecast(_raw(as_ints)) is None
    ints = client.post("/v1/forecast", json=as_ints)
    assert fast.status_code == slow.status_code == ints.status_code == 200, fast.text
    assert fast.content == slow.content == ints.content


def test_sentiment_answer_is_the_same_on_both_paths(client: TestClient) -> None:
    body = _raw({"texts": ["a gripping , funny and moving film .", "dull ."]})
    fast = client.post("/v1/sentiment", content=body, headers={"Content-Type": "application/json"})
    slow = client.post("/v1/sentiment", content=body, headers=SLOW_JSON)
    assert fast.status_code == slow.status_code == 200, fast.text
    assert fast.content == slow.content


def test_fast_path_errors_keep_their_shape(client: TestClient, m4_series: Series) -> None:
    """A body the decoder takes can still be refused by the model: same 422 either way."""
    body = _raw({"horizon": 999, "series": [{"values": [float(v) for v in m4_series[0][1][:10]]}]})
    fast = client.post("/v1/forecast", content=body, headers={"Content-Type": "application/json"})
    slow = client.post("/v1/forecast", content=body, headers=SLOW_JSON)
    assert fast.status_code == slow.status_code == 422
    assert fast.content == slow.content
    locs = {tuple(d["loc"]) for d in fast.json()["error"]["details"]}
    assert locs == {("body", "horizon"), ("body", "series", 0, "values")}
