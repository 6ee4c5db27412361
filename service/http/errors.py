"""Maps every exception to one JSON shape: {"error": {"type", "message", "details": [{"loc", "msg"}]}}."""

from __future__ import annotations

import logging
import uuid

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from service.exceptions import (
    ErrorDetail,
    InferenceError,
    InferenceTimeoutError,
    InvalidInputError,
    ModelNotFoundError,
    ModelUnavailableError,
    NotReadyError,
    PayloadTooLargeError,
    QueueFullError,
    ReloadRefusedError,
    ServiceError,
)
from service.http.responses import error_response, is_v2_path, v2_error_response

logger = logging.getLogger(__name__)

STATUS_CODES: dict[type[ServiceError], int] = {
    InvalidInputError: 422,
    ModelNotFoundError: 404,
    ModelUnavailableError: 503,
    NotReadyError: 503,
    QueueFullError: 503,
    InferenceTimeoutError: 504,
    InferenceError: 500,
    ReloadRefusedError: 409,
    PayloadTooLargeError: 413,
}

# The Open Inference Protocol answers every client error with 400 (Triton does the same for a refused
# model load); the other statuses are shared with /v1.
_V2_STATUS_OVERRIDES: dict[type[ServiceError], int] = {InvalidInputError: 400, ReloadRefusedError: 400}

# Domain locs are relative to what the client sent; this says where that was.
_LOC_ROOTS: dict[type[ServiceError], str] = {InvalidInputError: "body", ModelNotFoundError: "path"}

_HTTP_TYPES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}

# nginx's status for a client that went away before its answer: not a server fault, so not a 5xx.
CLIENT_CLOSED_REQUEST = 499


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, _service_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(ClientDisconnect, _client_gone)
    app.add_exception_handler(Exception, _unhandled)


def _status_for(exc: ServiceError) -> int:
    return next((STATUS_CODES[cls] for cls in type(exc).__mro__ if cls in STATUS_CODES), 500)


async def _service_error(request: Request, exc: ServiceError) -> Response:
    status = _status_for(exc)
    if status >= 500 and status not in (503, 504):
        return _server_fault(request, exc)
    # Backpressure is transient: a queue drains in milliseconds, so a one-second retry is generous.
    headers = {"Retry-After": "1"} if isinstance(exc, QueueFullError) else None
    if is_v2_path(request.url.path):
        overrides = _V2_STATUS_OVERRIDES
        status = next((overrides[c] for c in type(exc).__mro__ if c in overrides), status)
        return v2_error_response(status, exc.message, exc.details, headers=headers)
    root = next((_LOC_ROOTS[cls] for cls in type(exc).__mro__ if cls in _LOC_ROOTS), None)
    details = [ErrorDetail((root, *d.loc) if root else d.loc, d.msg) for d in exc.details]
    return error_response(status, exc.error_type, exc.message, details, headers=headers)


async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
    errors = exc.errors()
    if is_v2_path(request.url.path):
        details = [ErrorDetail(tuple(e["loc"]), str(e["msg"])) for e in errors]
        return v2_error_response(400, "the request does not match the protocol", details)
    invalid_json = next((e for e in errors if e.get("type") == "json_invalid"), None)
    if invalid_json is not None:
        reason = (invalid_json.get("ctx") or {}).get("error", "invalid JSON")
        position = invalid_json["loc"][-1] if len(invalid_json["loc"]) > 1 else "?"
        message = f"request body is not valid JSON: {reason} at character {position}"
        return error_response(400, "malformed_json", message, [ErrorDetail(("body",), message)])
    if isinstance(exc.body, bytes | bytearray):
        # FastAPI hands over raw bytes only when the Content-Type is not JSON.
        message = "request body must be JSON sent with Content-Type: application/json"
        return error_response(415, "unsupported_media_type", message, [ErrorDetail(("body",), message)])
    details = [ErrorDetail(tuple(e["loc"]), str(e["msg"])) for e in errors]
    return error_response(422, "validation_error", "the request does not match the schema", details)


async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
    if is_v2_path(request.url.path):
        return v2_error_response(exc.status_code, str(exc.detail), headers=exc.headers)
    error_type = _HTTP_TYPES.get(exc.status_code, "http_error")
    # FastAPI raises a bare 400 only when it cannot decode the body (e.g. not UTF-8 or nested too deep).
    details = [ErrorDetail(("body",), str(exc.detail))] if exc.status_code == 400 else []
    return error_response(exc.status_code, error_type, str(exc.detail), details, headers=exc.headers)


async def _client_gone(request: Request, exc: Exception) -> Response:
    # The client closed the connection before its body arrived: no answer can reach it, and counting it
    # as a 500 (with a traceback) would page someone for a client's timeout. The status is for the
    # request metrics; uvicorn writes nothing to a closed connection.
    logger.debug("client disconnected before its body was read: %s %s", request.method, request.url.path)
    return Response(status_code=CLIENT_CLOSED_REQUEST)


async def _unhandled(request: Request, exc: Exception) -> Response:
    return _server_fault(request, exc)


def _server_fault(request: Request, exc: Exception) -> Response:
    # Only genuine server faults get here; the id ties the client's report to the logged traceback.
    error_id = uuid.uuid4().hex[:16]
    logger.error("internal error id=%s %s %s", error_id, request.method, request.url.path, exc_info=exc)
    message = f"internal server error (error id {error_id})"
    if is_v2_path(request.url.path):
        return v2_error_response(500, message)
    return error_response(500, "internal_error", message)
