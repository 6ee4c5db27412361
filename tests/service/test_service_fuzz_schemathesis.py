"""Schemathesis over the whole OpenAPI schema, in process (ASGI): no 5xx, every answer fits its schema.

Every operation in the schema (forecast, sentiment, models, health, readiness) is fuzzed with both
schema-conforming and schema-violating data. The app is the real one on the real model repository;
schemathesis runs its lifespan (so the models load) before the first call. Bounded and derandomized
so it is reproducible and fast.

Random data rarely reaches the statuses that need a valid model input (a forecast needs at least
min_context_length values) or special settings (413, 503, 504), so every documented status of every
route is also produced once on purpose below and validated with the same checks.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis import checks
from schemathesis.generation.case import Case
from schemathesis.python import asgi
from svc_helpers import MODEL_NAME, make_settings, read_m4_series

from service.app import create_app

APP = create_app(make_settings())
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)

CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
]


@pytest.fixture(scope="module", autouse=True)
def _stop_lifespans() -> Iterator[None]:
    # Shut the app down (batchers included) while the event loop still runs, not at interpreter exit.
    yield
    asgi.shutdown_lifespans()


@schema.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_conforms_to_its_schema(case: Case) -> None:
    response = case.call_and_validate(checks=CHECKS)
    assert response.status_code < 500, response.text


def _series(n: int = 200) -> list[float]:
    return read_m4_series(1)[0][1][-n:]


_V2_BODY = {"inputs": [{"name": "values", "datatype": "FP32", "shape": [1, 200], "data": _series()}]}

# (settings overrides, method, path, JSON body or raw bytes, expected status); "empty" = no models.
DOCUMENTED: list[tuple[dict[str, Any] | str, str, str, Any, int]] = [
    ({}, "POST", "/v1/forecast", {"series": [{"id": "a", "values": _series()}], "horizon": 3}, 200),
    ({}, "POST", "/v1/forecast", b'{"series": [', 400),
    ({"max_body_bytes": 64}, "POST", "/v1/forecast", {"series": [{"values": _series()}]}, 413),
    ({}, "POST", "/v1/forecast", b"series=1", 415),
    ({}, "POST", "/v1/forecast", {"series": [{"values": [1.0]}]}, 422),
    ("empty", "POST", "/v1/forecast", {"series": [{"values": _series()}]}, 503),
    ({"request_timeout_seconds": 1e-9}, "POST", "/v1/forecast", {"series": [{"values": _series()}]}, 504),
    ({}, "POST", "/v1/sentiment", {"texts": ["a gripping film", "dull"]}, 200),
    ({}, "POST", "/v1/sentiment", b'{"texts": ["x"', 400),
    ({"max_body_bytes": 16}, "POST", "/v1/sentiment", {"texts": ["a gripping film"]}, 413),
    ({}, "POST", "/v1/sentiment", b"texts=x", 415),
    ({}, "POST", "/v1/sentiment", {"texts": []}, 422),
    ("empty", "POST", "/v1/sentiment", {"texts": ["x"]}, 503),
    ({"request_timeout_seconds": 1e-9}, "POST", "/v1/sentiment", {"texts": ["a gripping film"]}, 504),
    ({}, "POST", "/v1/generate", {"prompt": "ROMEO:", "max_new_tokens": 8, "seed": 1}, 200),
    ({}, "POST", "/v1/generate", {"prompt": "ROMEO\u20ac"}, 422),
    ({"generation_timeout_seconds": 1e-9}, "POST", "/v1/generate", {"prompt": "ROMEO:"}, 504),
    ({}, "POST", "/v1/completions", {"model": "shakespeare-char", "prompt": "A", "max_tokens": 4}, 200),
    ({}, "POST", "/v1/classify", {"sequences": [[[0.0] * 28] * 28]}, 200),
    ({}, "POST", "/v1/classify", {"sequences": [[[256.0] * 28] * 28]}, 422),
    ({}, "GET", "/v1/models", None, 200),
    ("empty", "GET", "/v1/models", None, 200),
    ({}, "GET", f"/v1/models/{MODEL_NAME}", None, 200),
    ({}, "GET", "/v1/models/nope", None, 404),
    ({}, "GET", "/healthz", None, 200),
    ({}, "GET", "/readyz", None, 200),
    ("empty", "GET", "/readyz", None, 503),
    ({}, "POST", f"/v2/models/{MODEL_NAME}/infer", _V2_BODY, 200),
    ({}, "POST", f"/v2/models/{MODEL_NAME}/infer", {"inputs": []}, 400),
    ({}, "POST", "/v2/models/nope/infer", _V2_BODY, 404),
    ({"max_body_bytes": 64}, "POST", f"/v2/models/{MODEL_NAME}/infer", _V2_BODY, 413),
    ({"request_timeout_seconds": 1e-9}, "POST", f"/v2/models/{MODEL_NAME}/infer", _V2_BODY, 504),
    ({}, "GET", f"/v2/models/{MODEL_NAME}", None, 200),
    ({}, "GET", "/v2/models/nope", None, 404),
    ({}, "GET", "/v2/health/ready", None, 200),
    ("empty", "GET", "/v2/health/ready", None, 503),
    ({}, "POST", "/v2/repository/index", None, 200),
]


def _template(path: str) -> str:
    if path.startswith("/v1/models/"):
        return "/v1/models/{name}"
    if path.startswith("/v2/models/"):
        return "/v2/models/{name}/infer" if path.endswith("/infer") else "/v2/models/{name}"
    return path


@pytest.mark.parametrize(
    ("overrides", "method", "path", "body", "status"),
    DOCUMENTED,
    ids=[f"{m} {p} {s}{' ' + str(o) if o else ''}" for o, m, p, _, s in DOCUMENTED],
)
def test_every_documented_status_conforms(
    tmp_path: Path, overrides: dict[str, Any] | str, method: str, path: str, body: Any, status: int
) -> None:
    app_settings = make_settings(tmp_path) if overrides == "empty" else make_settings(**dict(overrides))
    kwargs: dict[str, Any] = {}
    if isinstance(body, bytes):
        content_type = "text/plain" if status == 415 else "application/json"
        kwargs = {"content": body, "headers": {"content-type": content_type}}
    elif body is not None:
        kwargs = {"json": body}
    with TestClient(create_app(app_settings)) as client:
        response = client.request(method, path, **kwargs)
    assert response.status_code == status, response.text
    operation = schema[_template(path)][method]
    name = path.split("/")[3] if path.startswith("/v2/models/") else path.rsplit("/", 1)[1]
    path_parameters = {"name": name} if "{name}" in _template(path) else None
    case_kwargs: dict[str, Any] = {"body": body} if isinstance(body, dict) else {}
    if isinstance(body, dict) and path.startswith("/v2/"):
        case_kwargs["media_type"] = "application/json"  # V2 infer also documents binary bodies
    case = operation.Case(path_parameters=path_parameters, **case_kwargs)
    # 503 and 504 are documented answers (not ready, timeout), not faults: only their shape is checked.
    wanted = [c for c in CHECKS if status < 500 or c is not checks.not_a_server_error]
    case.validate_response(response, checks=wanted)
