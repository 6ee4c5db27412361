"""The fast body path of /v1/forecast and /v1/sentiment answers exactly as FastAPI's path does.

A plain ``application/json`` body is validated by the route's own pydantic model and handed to the
endpoint directly; anything the model rejects goes through FastAPI. FastAPI parses any
``application/*+json`` body but the fast path only plain JSON, so sending the same bytes with both
content types compares the two paths over real HTTP, the real model and real errors.
"""

from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from service.http.fast_v1 import decode_body
from service.http.schemas_v1 import ForecastRequest, SentimentRequest

Series = list[tuple[str, list[float]]]
FAST = {"Content-Type": "application/json"}
SLOW = {"Content-Type": "application/vnd.seqserve+json"}


def _both(client: TestClient, path: str, body: bytes) -> tuple[Any, Any]:
    return client.post(path, content=body, headers=FAST), client.post(path, content=body, headers=SLOW)


def test_decode_body_is_the_model_or_none(m4_series: Series) -> None:
    values = m4_series[0][1]
    decoded = decode_body(
        ForecastRequest, orjson.dumps({"horizon": 3, "series": [{"id": "a", "values": values}]})
    )
    assert decoded is not None and decoded.horizon == 3 and decoded.series[0].values == values
    assert decode_body(SentimentRequest, b'{"texts": ["good"]}') == SentimentRequest(texts=["good"])
    refused = [
        b"", b"{", b'{"series": []}', b'{"series": [{"values": [true]}]}', b'{"texts": "x"}',
        b'{"series": [{"values": [1.0]}], "extra": 1}', b'{"model": "\\ud800", "texts": ["a"]}',
    ]  # fmt: skip
    for raw in refused:
        assert decode_body(ForecastRequest, raw) is None
        assert decode_body(SentimentRequest, raw) is None


def test_forecast_answers_alike(client: TestClient, m4_series: Series) -> None:
    body = {
        "horizon": 24,
        "quantiles": [0.1, 0.5],
        "series": [{"id": sid, "values": v} for sid, v in m4_series],
    }
    fast, slow = _both(client, "/v1/forecast", orjson.dumps(body))
    assert fast.status_code == slow.status_code == 200, fast.text
    assert fast.content == slow.content


def test_sentiment_answers_alike(client: TestClient) -> None:
    fast, slow = _both(
        client, "/v1/sentiment", orjson.dumps({"texts": ["a gripping , funny film .", "dull ."]})
    )
    assert fast.status_code == slow.status_code == 200, fast.text
    assert fast.content == slow.content


@pytest.mark.parametrize(
    ("path", "raw", "status"),
    [
        ("/v1/forecast", b'{"series": [{"values": [1.0, "2"]}]}', 422),
        ("/v1/forecast", b'{"series": [{"values": [1.0]}], "unknown": 1}', 422),
        ("/v1/forecast", b'{"series": []}', 422),
        ("/v1/forecast", b'{"series": [{"values": [NaN]}]}', 422),
        ("/v1/forecast", b'{"series": [', 400),
        ("/v1/forecast", b'{"horizon": 999, "series": [{"values": [1.0, 2.0]}]}', 422),  # the model's 422
        ("/v1/sentiment", b'{"texts": [""]}', 422),
        ("/v1/sentiment", b'{"texts": ["\\ud800"]}', 422),
        ("/v1/sentiment", b'{"texts": []}', 422),
    ],
)
def test_errors_are_the_same_on_both_paths(client: TestClient, path: str, raw: bytes, status: int) -> None:
    fast, slow = _both(client, path, raw)
    assert fast.status_code == slow.status_code == status, (fast.text, slow.text)
    assert fast.json() == slow.json()
    assert fast.json()["error"]["details"], "every error names where"
