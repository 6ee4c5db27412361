"""Request bodies parsed with orjson, falling back to the stdlib for what orjson refuses.

FastAPI decodes JSON bodies with ``json.loads``, a measurable share of a forecast request's CPU
(336 floats per series). orjson is several times faster on the same input. It is stricter, though:
it refuses NaN/Infinity literals, integers beyond 64 bits and some escapes, which the stdlib accepts
and which validation must then report *by field* (a 422 pointing at the NaN) rather than as a bad
body. So anything orjson rejects is parsed again by the stdlib, and behaviour is unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any, TypeVar

import orjson
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from service.http.fast_v1 import decode_body


class FastJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            try:
                self._json = orjson.loads(body)
            except orjson.JSONDecodeError:
                self._json = json.loads(body)
        return self._json


FastPath = Callable[[Request], Awaitable[Response | None]]
# endpoint -> its fast path, which answers or returns None to leave the request to FastAPI.
_FAST_PATHS: dict[Callable[..., Any], FastPath] = {}
E = TypeVar("E", bound=Callable[..., Awaitable[Response]])


def fast_body(model: type[BaseModel]) -> Callable[[E], E]:
    """Give ``endpoint(body, request)`` a fast path that validates ``model`` directly (fast_v1.py).

    The endpoint stays as declared, so OpenAPI documents its body as before. The express lane
    (service/http/express.py) calls the fast path: a plain ``application/json`` body that the model
    accepts skips FastAPI's dependency and validation machinery, and anything else (other content
    types, invalid JSON, invalid bodies) goes through FastAPI and its error responses.
    """

    def register(endpoint: E) -> E:
        async def fast(request: Request) -> Response | None:
            if not is_json_content_type(request.headers):
                return None
            body = decode_body(model, await request.body())
            if body is None:
                return None
            # The endpoint's coroutine owns the decoded body from here. Without this frame's reference,
            # the endpoint can free the body's Python lists before its request waits for the model
            # (docs/memory.md).
            call = endpoint(body, request)
            del body
            return await call

        _FAST_PATHS[endpoint] = fast
        return endpoint

    return register


def fast_path_for(endpoint: Callable[..., Any]) -> FastPath | None:
    return _FAST_PATHS.get(endpoint)


class FastJSONRoute(APIRoute):
    """FastAPI's route, reading JSON bodies with orjson (FastJSONRequest)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def fast_json_handler(request: Request) -> Response:
            return await handler(FastJSONRequest(request.scope, request.receive))

        return fast_json_handler


def is_json_content_type(headers: Mapping[str, str]) -> bool:
    """Only a plain ``application/json`` body takes a fast path; FastAPI judges anything else."""
    value = headers.get("content-type")
    return value is not None and value.split(";", 1)[0].strip().lower() == "application/json"
