"""Optional API-key authentication as pure ASGI middleware.

With keys configured, every ``/v1`` route (predictions, ``/v1/models``, ``/v1/models/{name}`` and its
admin sub-routes) needs a key in ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``; ``/healthz``,
``/readyz`` and ``/metrics`` need one only when ``auth_protect_health_and_metrics`` is set. Anything else
(the OpenAPI document and docs, unknown paths) is left alone.

It runs before the body is read, so an unauthenticated client cannot make the service buffer a body.
Keys are compared as SHA-256 digests with ``hmac.compare_digest`` against every configured key, without
an early exit, so the time taken says nothing about which key, or how much of one, matched. The key a
client sent is never logged and never echoed in a response.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence
from typing import Any

import orjson
from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from service.exceptions import ErrorDetail
from service.http.responses import error_content, is_v2_path

_HEALTH_AND_METRICS = frozenset({"/healthz", "/readyz", "/metrics", "/v2/health/live", "/v2/health/ready"})
_SECURITY_SCHEMES = {
    "bearerAuth": {"type": "http", "scheme": "bearer"},
    "apiKeyAuth": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
}


def is_protected(path: str, protect_health_and_metrics: bool) -> bool:
    """Whether a request path (or an OpenAPI path template) needs a key when keys are configured."""
    if path in _HEALTH_AND_METRICS:
        return protect_health_and_metrics
    return path in ("/v1", "/v2") or path.startswith(("/v1/", "/v2/"))


def install_security_schemes(app: FastAPI, protect_health_and_metrics: bool = False) -> None:
    """Declare both ways of sending a key in the OpenAPI document, on every protected operation."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()  # FastAPI caches this very dict in app.openapi_schema
            schema.setdefault("components", {})["securitySchemes"] = _SECURITY_SCHEMES
            for path, operations in schema.get("paths", {}).items():
                if is_protected(path, protect_health_and_metrics):
                    for operation in operations.values():
                        operation["security"] = [{name: []} for name in _SECURITY_SCHEMES]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _digest(value: bytes) -> bytes:
    return hashlib.sha256(value).digest()


class ApiKeys:
    """The configured keys, and whether a request may pass (also asked by the direct lane, direct.py)."""

    def __init__(self, keys: Sequence[str], protect_health_and_metrics: bool = False) -> None:
        if not keys:
            raise ValueError("ApiKeys needs at least one key")
        self._digests = [_digest(key.encode()) for key in keys]
        self.protect_health = protect_health_and_metrics

    def admits(self, scope: Scope) -> bool:
        """True when the path needs no key or a valid one was sent: the middleware would pass it on."""
        if not is_protected(scope["path"], self.protect_health):
            return True
        return self.any_valid(_presented_keys(scope["headers"]))

    def any_valid(self, candidates: Iterable[bytes]) -> bool:
        valid = False
        for candidate in candidates:
            presented = _digest(candidate)
            for expected in self._digests:
                # No short-circuit: every configured key is compared every time.
                valid |= hmac.compare_digest(presented, expected)
        return valid


class ApiKeyMiddleware:
    def __init__(self, app: ASGIApp, keys: Sequence[str], protect_health_and_metrics: bool = False) -> None:
        self.app = app
        self._keys = ApiKeys(keys, protect_health_and_metrics)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_protected(scope["path"], self._keys.protect_health):
            await self.app(scope, receive, send)
            return
        candidates = list(_presented_keys(scope["headers"]))
        v2 = is_v2_path(scope["path"])
        if not candidates:
            await _reject(send, "missing API key: send Authorization: Bearer <key> or X-API-Key: <key>", v2)
            return
        if not self._keys.any_valid(candidates):
            await _reject(send, "invalid API key", v2)
            return
        await self.app(scope, receive, send)


def _presented_keys(headers: Iterable[tuple[bytes, bytes]]) -> Iterable[bytes]:
    """Keys the client sent: the token of ``Authorization: Bearer`` and the ``X-API-Key`` value."""
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.strip().partition(b" ")
            token = token.strip()
            if scheme.lower() == b"bearer" and token:
                yield token
        elif name == b"x-api-key":
            token = value.strip()
            if token:
                yield token


async def _reject(send: Send, message: str, v2: bool) -> None:
    detail = ErrorDetail(("header", "authorization"), message)
    body = orjson.dumps({"error": message} if v2 else error_content("unauthorized", message, [detail]))
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"www-authenticate", b"Bearer"),
    ]
    await send({"type": "http.response.start", "status": 401, "headers": headers})
    await send({"type": "http.response.body", "body": body})
