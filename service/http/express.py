"""The express lane: the inference routes served without Starlette's routing and FastAPI's wrappers.

A forecast request is cheap for the model and expensive for the framework. Between our own middleware
and the endpoint, Starlette runs its exception middleware, a regex per route until one matches, and
FastAPI's request/response wrapper with its exit stack; measured in process with the real model at 64
concurrent requests, that was about 30% of the event-loop thread's CPU per request.

This middleware sits innermost, inside the metrics, CORS, API-key and body-limit middleware, so those
still see every request exactly as before. For an inference route (the ``fast_body`` routes of /v1, and
the V2 ``infer`` routes) it matches the route itself and calls the endpoint's fast path directly. The
endpoint's exceptions go to the app's own exception handlers, so error bodies are unchanged. Whatever a
fast path declines (a body its schema rejects, another content type) goes on to the full app with the
body replayed, where FastAPI produces the documented 4xx; everything else goes there untouched.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.http.direct_route import DirectRoute, reads_request_itself
from service.http.fast_json import fast_path_for

FastPath = Callable[[Request], Awaitable[Response | None]]
ExceptionHandler = Callable[[Request, Exception], Awaitable[Response]]


class ExpressLane:
    def __init__(self, app: ASGIApp, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self._lane = express_routes(routes)
        # Requests of other methods (health checks, scrapes, pages) skip the lane's route checks.
        self._methods = lane_methods(self._lane)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in self._methods:
            for route, fast in self._lane:
                match, child = route.matches(scope)
                if match is Match.FULL:
                    scope.update(child)
                    await serve_fast(fast, scope, receive, send, self.app)
                    return
        await self.app(scope, receive, send)


async def serve_fast(
    fast: FastPath, scope: Scope, receive: Receive, send: Send, fallback: ASGIApp
) -> int | None:
    """Answer with a route's fast path: the status sent, or None when the request went on to ``fallback``.

    The endpoint's exceptions go to the app's own handlers (``scope["app"]``), as Starlette's exception
    middleware would send them; one without a handler propagates. A request the fast path declines goes
    to ``fallback`` with its body replayed.
    """
    request = Request(scope, receive)
    try:
        response = await fast(request)
    except Exception as exc:
        handler = handler_for(scope, exc)
        if handler is None:
            raise  # server faults (and the body limit's signal) take the same way out as before
        response = await handler(request, exc)
    if response is None:
        body = await request.body()  # already read and cached by the fast path
        await fallback(scope, _replay(body, receive), send)
        return None
    await response(scope, receive, send)
    return response.status_code


def express_routes(routes: Sequence[BaseRoute]) -> list[tuple[APIRoute, FastPath]]:
    """The routes with a fast path, in routing order, each with it."""
    lane: list[tuple[APIRoute, FastPath]] = []
    for route in routes:
        if not isinstance(route, APIRoute):
            continue
        fast = fast_path_for(route.endpoint)
        direct = isinstance(route, DirectRoute) and "POST" in (route.methods or ())
        if fast is None and direct and reads_request_itself(route.endpoint):
            fast = _direct(route.endpoint)
        if fast is not None:
            lane.append((route, fast))
    return lane


def lane_methods(lane: Sequence[tuple[APIRoute, FastPath]]) -> frozenset[str]:
    """The HTTP methods of the lane's routes: requests of any other method need no route check."""
    return frozenset(m for route, _ in lane for m in route.methods or ())


def _direct(endpoint: Callable[..., Awaitable[Response]]) -> FastPath:
    async def fast(request: Request) -> Response:
        return await endpoint(request=request, **request.path_params)

    return fast


def handler_for(scope: Scope, exc: Exception) -> ExceptionHandler | None:
    """The app's handler for this exception, as Starlette's exception middleware would choose it.

    ``Exception`` itself is left out: Starlette answers unhandled errors in its outermost middleware,
    which also re-raises them so that the server logs the traceback.
    """
    handlers: dict[Any, ExceptionHandler] = scope["app"].exception_handlers
    for cls in type(exc).__mro__:
        if cls is Exception:
            return None
        if cls in handlers:
            return handlers[cls]
    return None


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # after the body: a disconnect, as the server reports it

    return replay


async def unhandled_response(app: FastAPI, scope: Scope, exc: Exception) -> Response:
    """What Starlette's ServerErrorMiddleware answers: the app's handler for 500 / Exception."""
    handler: Any = None
    for key, value in app.exception_handlers.items():
        if key in (500, Exception):
            handler = value
    if handler is None:
        return PlainTextResponse("Internal Server Error", status_code=500)
    response: Response = await handler(Request(scope), exc)
    return response
