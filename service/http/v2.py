"""Open Inference Protocol (KServe V2) routes: health, metadata and inference. Thin: the protocol's
semantics live in ``service.runtime.v2_codec`` and ``service.runtime.v2_infer``.

Errors on these routes have the protocol's shape ``{"error": "message"}`` (``service.http.errors``).
"""

from __future__ import annotations

from typing import Any, cast

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from service.config import Settings
from service.exceptions import (
    InvalidInputError,
    ModelUnavailableError,
    NotReadyError,
)
from service.http.bodies import read_body
from service.http.direct_route import DirectRoute
from service.http.timeouts import within_timeout
from service.http.v2_openapi import INFER_BODY, V2_ERRORS
from service.metrics import count_rejection
from service.runtime import v2_infer
from service.runtime.registry import ModelRecord, ModelRegistry
from service.runtime.v2_codec import decode_request, encode_response, parse_header_length

router = APIRouter(tags=["Open Inference Protocol (V2)"], route_class=DirectRoute)

HEADER_LENGTH = "Inference-Header-Content-Length"


def _registry(request: Request) -> ModelRegistry:
    return cast(ModelRegistry, request.app.state.registry)


def _settings(request: Request) -> Settings:
    return cast(Settings, request.app.state.settings)


def _json(content: Any, status_code: int = 200) -> Response:
    return Response(orjson.dumps(content), status_code=status_code, media_type="application/json")


def _version(text: str | None) -> int | None:
    if text is None:
        return None
    if not text.isascii() or not text.isdigit():
        raise InvalidInputError(f"model version must be a non-negative integer, got {text!r}")
    return int(text)


def _record(request: Request, name: str, version: str | None) -> ModelRecord:
    return ready_record(_registry(request), name, version)


def ready_record(registry: ModelRegistry, name: str, version: str | None) -> ModelRecord:
    """The ready version a V2 route serves, or the error that says why there is none; counts nothing."""
    record = registry.get_version(name, _version(version))
    if record.state == "unloaded":
        raise ModelUnavailableError(
            f"model {name!r} is unloaded; load it with POST /v2/repository/models/{name}/load"
        )
    if record.state != "ready":
        raise ModelUnavailableError(f"model {name!r} is not ready: {record.error}")
    return record


# Inference first: routes are matched in order, and these are the hot ones.
@router.post(
    "/v2/models/{name}/infer", summary="Inference (default version)", openapi_extra=INFER_BODY,
    responses=V2_ERRORS,
)  # fmt: skip
async def infer(name: str, request: Request) -> Response:
    return await _infer(request, name, None)


@router.post(
    "/v2/models/{name}/versions/{version}/infer", summary="Inference", openapi_extra=INFER_BODY,
    responses=V2_ERRORS,
)  # fmt: skip
async def infer_version(name: str, version: str, request: Request) -> Response:
    return await _infer(request, name, version)


@router.get("/v2", summary="Server metadata", responses=V2_ERRORS)
async def server_metadata() -> Response:
    return _json(v2_infer.server_metadata())


@router.get("/v2/health/live", summary="Server liveness")
async def live() -> Response:
    return _json({"live": True})


@router.get("/v2/health/ready", summary="Server readiness: every loaded model is ready", responses=V2_ERRORS)
async def ready(request: Request) -> Response:
    if request.app.state.drain.draining:
        # SIGTERM with SEQSERVE_DRAIN_SECONDS: still serving, but routing must move (runtime/drain.py).
        return _json({"ready": False, "draining": True}, status_code=503)
    not_ready = _registry(request).not_ready()
    if not_ready:
        reasons = "; ".join(f"{name}: {reason}" for name, reason in not_ready.items())
        raise NotReadyError(f"{len(not_ready)} model(s) not ready: {reasons}")
    return _json({"ready": True})


@router.get("/v2/models/{name}", summary="Model metadata (default version)", responses=V2_ERRORS)
async def model_metadata(name: str, request: Request) -> Response:
    return _metadata(request, name, None)


@router.get("/v2/models/{name}/versions/{version}", summary="Model metadata", responses=V2_ERRORS)
async def model_version_metadata(name: str, version: str, request: Request) -> Response:
    return _metadata(request, name, version)


def _metadata(request: Request, name: str, version: str | None) -> Response:
    registry = _registry(request)
    record = _record(request, name, version)
    return _json(v2_infer.model_metadata(record, registry.loaded_versions(name)))


@router.get("/v2/models/{name}/config", summary="Triton-style model configuration", responses=V2_ERRORS)
async def model_config(name: str, request: Request) -> Response:
    settings = _settings(request)
    record = _record(request, name, None)
    return _json(v2_infer.triton_config(record, settings.max_batch_size, settings.max_queue_delay_seconds))


@router.get("/v2/models/{name}/ready", summary="Model readiness (default version)", responses=V2_ERRORS)
async def model_ready(name: str, request: Request) -> Response:
    return _ready(request, name, None)


@router.get(
    "/v2/models/{name}/versions/{version}/ready", summary="Model version readiness", responses=V2_ERRORS
)
async def model_version_ready(name: str, version: str, request: Request) -> Response:
    return _ready(request, name, version)


def _ready(request: Request, name: str, version: str | None) -> Response:
    record = _registry(request).get_version(name, _version(version))
    if record.state != "ready":
        raise ModelUnavailableError(f"model {name!r} is not ready: {record.error or record.state}")
    return _json({"name": name, "ready": True})


async def _infer(request: Request, name: str, version: str | None) -> Response:
    settings = _settings(request)
    record = _record(request, name, version)
    try:
        body = await read_body(request, settings.max_body_bytes)
        header_length = parse_header_length(request.headers.get(HEADER_LENGTH), len(body))
        decoded = decode_request(body, header_length)
    except Exception as exc:
        count_rejection(name, exc)
        raise
    timeout = settings.request_timeout_seconds
    if decoded.timeout_seconds is not None:
        timeout = min(timeout, decoded.timeout_seconds)
    outputs = await within_timeout(v2_infer.infer(record, decoded), timeout, name)
    assert record.version is not None
    content, json_length = encode_response(name, record.version, decoded.id, outputs)
    if json_length is None:
        return Response(content, media_type="application/json")
    return Response(content, media_type="application/octet-stream", headers={HEADER_LENGTH: str(json_length)})
