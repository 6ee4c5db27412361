"""Which requests the native lane (native.py) takes, route by route, and how each answers.

An admission runs the endpoint's own decoding and checks, with no side effect, and returns None for
anything the endpoint would not answer 200 from one queued item; the direct lane's ASGI path then answers
it exactly as before. Its ``answer`` renders the outputs with the endpoint's own payload and encoding
functions, so both paths send the same bytes (tests/service/test_service_http_native.py).
"""

from __future__ import annotations

import math
from typing import Any

from starlette.types import Scope
from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

from service.http.fast_v1 import decode_body
from service.http.native import Admission, Admitted, Headers, NativeLane
from service.http.responses import render_json
from service.http.schemas_v1 import ForecastRequest
from service.http.v1 import forecast_payload, forecast_query
from service.http.v2 import ready_record
from service.runtime.inference import Arrays
from service.runtime.v2_codec import decode_request, encode_response, parse_header_length
from service.runtime.v2_infer import check_inputs, check_outputs, tensor_specs
from service.tasks.forecast import ForecastHandler

_JSON_HEADERS = (b"content-type", b"application/json")


def forecast_v1(lane: NativeLane, cycle: RequestResponseCycle, child: Scope) -> Admitted | None:
    """/v1/forecast, as its endpoint (service/http/v1.py) answers it."""
    body = decode_body(ForecastRequest, cycle.body)
    if body is None:
        return None
    record = lane.app.state.registry.ready(body.model, "forecast")
    handler = None if record is None else record.handler
    if record is None or record.version is None or not isinstance(handler, ForecastHandler):
        return None
    query = forecast_query(body)
    try:
        prepared = handler.prepare(query)
    except Exception:
        return None
    batch = handler.one_batch(prepared)
    if batch is None or not handler.runner.can_enqueue(batch.shape[0]):
        return None
    name, version = record.name, record.version

    def answer(outputs: Arrays) -> tuple[bytes, Headers]:
        out = outputs[handler.output_name]
        handler.drift.observe(batch, out)  # queued only, as on the endpoint's path
        body = render_json(forecast_payload(name, version, handler.finish(prepared, list(out))))
        return body, [(b"content-length", str(len(body)).encode()), _JSON_HEADERS]

    # The float lists go with the query; the rows are float32 (docs/memory.md).
    lengths = [len(s.values) for s in query.series]
    return Admitted(
        name, handler.runner, {handler.input_name: batch}, lane.settings.request_timeout_seconds, answer,
        lambda: handler.observe_lengths(lengths),
    )  # fmt: skip


def infer_v2(lane: NativeLane, cycle: RequestResponseCycle, child: Scope) -> Admitted | None:
    """V2 ``infer`` of a forecast model, as its endpoint (service/http/v2.py) answers it."""
    params = child["path_params"]
    name = params["name"]
    try:
        record = ready_record(lane.app.state.registry, name, params.get("version"))
    except Exception:
        return None
    handler = record.handler
    if record.version is None or not isinstance(handler, ForecastHandler):
        return None
    body = bytes(cycle.body)
    header_length = _header(cycle.scope, b"inference-header-content-length")
    try:
        decoded = decode_request(body, parse_header_length(header_length, len(body)))
        inputs, outputs = tensor_specs(record)
        check_inputs(inputs, decoded)
        wanted = check_outputs(outputs, decoded)
    except Exception:
        return None
    values = decoded.inputs[handler.input_name]
    batch = handler.tensor_batch(values)
    if batch is None or not handler.runner.can_enqueue(batch.shape[0]):
        return None
    timeout = min(lane.settings.request_timeout_seconds, decoded.timeout_seconds or math.inf)
    model_version, request_id = record.version, decoded.id

    def answer(outputs: Arrays) -> tuple[bytes, Headers]:
        results = handler.batch_outputs(batch, outputs[handler.output_name])
        tensors = [(spec.name, spec.datatype, results[spec.name], binary) for spec, binary in wanted]
        content, json_length = encode_response(name, model_version, request_id, tensors)
        length = (b"content-length", str(len(content)).encode())
        if json_length is None:
            return content, [length, _JSON_HEADERS]
        # Starlette's order for Response(headers=...): the given headers, then length and type.
        return content, [(b"inference-header-content-length", str(json_length).encode()), length,
                         (b"content-type", b"application/octet-stream")]  # fmt: skip

    return Admitted(
        name, handler.runner, {handler.input_name: batch}, timeout, answer,
        lambda: handler.observe_tensor_lengths(values),
    )  # fmt: skip


def _header(scope: Any, name: bytes) -> str | None:
    """The first value of a header, as Starlette's Headers.get reads it."""
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


# Route template -> its admission; json_only: the route takes only application/json bodies.
NATIVE_ROUTES: dict[str, tuple[Admission, bool]] = {
    "/v1/forecast": (forecast_v1, True),
    "/v2/models/{name}/infer": (infer_v2, False),
    "/v2/models/{name}/versions/{version}/infer": (infer_v2, False),
}
