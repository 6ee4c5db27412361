"""Happy-path decoding of /v1/forecast and /v1/sentiment bodies, without pydantic.

A forecast body is mostly floats: pydantic builds a list of Python floats from them, validating
each, and the task then copies that list into numpy. Here orjson's parse is checked by hand against
exactly what the strict request models accept, and the values go straight into float64 arrays.
Anything off the happy path (an int where a float is expected, an unknown key, a wrong type, a body
orjson refuses) returns ``None``, and the route falls back to the documented pydantic validation, so
every error response is the one it has always been. Only bodies pydantic would accept unchanged get
through here, and they produce the same domain call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import orjson

from service.tasks.forecast import ForecastQuery, SeriesInput

_FORECAST_KEYS = frozenset({"model", "horizon", "quantiles", "series"})
_SERIES_KEYS = frozenset({"id", "values"})
_SENTIMENT_KEYS = frozenset({"model", "texts"})


@dataclass(frozen=True)
class FastForecast:
    model: str | None
    query: ForecastQuery


@dataclass(frozen=True)
class FastSentiment:
    model: str | None
    texts: list[str]


def _parse(raw: bytes) -> dict[str, Any] | None:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return body if type(body) is dict else None


def _optional_str(value: Any) -> bool:
    # orjson refuses lone surrogates, so any str it returns is valid Unicode.
    return value is None or type(value) is str


def _floats(value: Any) -> bool:
    # Strict pydantic takes ints for floats too; those bodies are rare and go the documented way.
    return type(value) is list and all(type(v) is float for v in value)


def decode_forecast(raw: bytes) -> FastForecast | None:
    body = _parse(raw)
    if body is None or not body.keys() <= _FORECAST_KEYS:
        return None
    model, horizon = body.get("model"), body.get("horizon")
    quantiles, series = body.get("quantiles"), body.get("series")
    if not _optional_str(model):
        return None
    if horizon is not None and (type(horizon) is not int or horizon < 1):
        return None
    if quantiles is not None and not _floats(quantiles):
        return None
    if type(series) is not list or not series:
        return None
    inputs = []
    for item in series:
        if type(item) is not dict or "values" not in item or not item.keys() <= _SERIES_KEYS:
            return None
        values, sid = item["values"], item.get("id")
        if not _optional_str(sid) or not _floats(values):
            return None
        # The task only takes len() and np.asarray() of values, as it does for V2's numpy rows.
        array = cast(Sequence[float], np.array(values, dtype=np.float64))
        inputs.append(SeriesInput(values=array, id=sid))
    return FastForecast(model, ForecastQuery(series=inputs, horizon=horizon, quantiles=quantiles))


def decode_sentiment(raw: bytes) -> FastSentiment | None:
    body = _parse(raw)
    if body is None or not body.keys() <= _SENTIMENT_KEYS:
        return None
    model, texts = body.get("model"), body.get("texts")
    if not _optional_str(model) or type(texts) is not list or not texts:
        return None
    if not all(type(t) is str for t in texts):
        return None
    return FastSentiment(model, texts)
