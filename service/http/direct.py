"""The direct lane: inference requests answered from the HTTP protocol, past the ASGI middleware stack.

The express lane (express.py) already takes the inference routes past Starlette's routing and FastAPI's
wrappers, but every request still walks uvicorn's proxy-headers middleware, FastAPI and Starlette's
entry, the server-error, telemetry, metrics, CORS, API-key and body-limit middleware, each with its own
``send`` wrapper, before the fast path runs. For a forecast whose model run costs about 0.3 ms, that
walk was a measurable share of the CPU per request (docs/performance.md, round 6).

Here the protocol (service/http/protocol.py) asks, once the headers are in, whether a request can skip
that stack; the request still runs as uvicorn's own request-response cycle (body reading, 100-continue,
keep-alive, pipelining, graceful shutdown and the response bytes are uvicorn's). It can skip it when
the middleware would have let it through untouched:

- a method and path of a fast route, matched as the router does;
- a ``Content-Length`` within ``max_body_bytes`` and no ``Transfer-Encoding`` (the body limit passes it);
- with API keys configured, a valid key, or a path that needs none (the key check passes it);
- with CORS configured, no ``Origin`` header (CORS leaves such requests alone).

What the skipped middleware does to such a request is done here: the HTTP metrics (the same series, the
same status), the app's exception handlers, and for an exception without one, the app's handler for
``Exception`` as Starlette's server-error middleware calls it. A request the fast path declines (a body
its schema refuses, another content type) goes to the whole app with its body replayed, and is counted
there. The lane is off when uvicorn's access log or OpenTelemetry is on: both watch the full stack.

A forecast the lane takes may go further still: the native lane (native.py) answers it from the
protocol's callbacks, with no ASGI task at all, and hands it back to this lane's callable whenever it
is not a plain success.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.config import Settings
from service.http.auth import ApiKeys
from service.http.express import FastPath, express_routes, lane_methods, serve_fast, unhandled_response
from service.http.native import NativeLane
from service.http.native_routes import NATIVE_ROUTES
from service.metrics import RequestTimer

# How far down uvicorn's wrappers (proxy headers, message logger) the app is looked for.
_MAX_WRAPPERS = 8
# Distinct (method, root path, path) route matches remembered; a client sending ever new paths
# (model names) only stops them being remembered, not being answered.
_MATCHES_KEPT = 256

_Matched = tuple[str, FastPath, Scope]


class DirectLane:
    """Which requests may skip the middleware stack, and the ASGI callable that answers one of them."""

    def __init__(self, app: FastAPI, routes: Sequence[BaseRoute], settings: Settings) -> None:
        self.app = app
        self._routes = express_routes(routes)
        self._methods = lane_methods(self._routes)
        self._max_body = settings.max_body_bytes
        self._cors = bool(settings.cors_allow_origins)
        self.native = NativeLane(app, settings, NATIVE_ROUTES) if settings.native_lane else None
        keys = [key.get_secret_value() for key in settings.api_keys]
        self._keys = ApiKeys(keys, settings.auth_protect_health_and_metrics) if keys else None
        # The routes are fixed once the app exists, so a path matches the same route every time and the
        # router's regexes need not run again for it.
        self._matched: dict[tuple[str, str, str], _Matched | None] = {}

    @staticmethod
    def enabled(settings: Settings) -> bool:
        return settings.direct_lane and not settings.access_log and not settings.opentelemetry

    def app_for(self, scope: Scope, full_app: ASGIApp) -> DirectCall | None:
        """The direct answer for this request, or None when it must take ``full_app`` (the whole stack)."""
        if scope["method"] not in self._methods:
            return None
        length: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                if length is None:  # the body limit reads the first one too
                    length = value
            elif name == b"transfer-encoding" or (name == b"origin" and self._cors):
                return None
        if length is None or not length.isdigit() or int(length) > self._max_body:
            return None
        if self._keys is not None and not self._keys.admits(scope):
            return None
        matched = self._match(scope)
        if matched is None:
            return None
        template, fast, child = matched
        # Each request gets its own path_params, as the router gives it.
        child = {**child, "path_params": dict(child["path_params"])}
        return DirectCall(self.app, full_app, template, fast, child)

    def _match(self, scope: Scope) -> _Matched | None:
        """The fast route this request's method and path match fully, as the router would find it."""
        key = (scope["method"], scope.get("root_path", ""), scope["path"])
        try:
            return self._matched[key]
        except KeyError:
            pass
        found: _Matched | None = None
        for route, fast in self._routes:
            match, child = route.matches(scope)
            if match is Match.FULL:
                found = (route.path, fast, child)
                break
        if len(self._matched) < _MATCHES_KEPT:
            self._matched[key] = found
        return found


class DirectCall:
    __slots__ = ("_app", "_child", "_fast", "_full_app", "_template")

    def __init__(self, app: FastAPI, full_app: ASGIApp, template: str, fast: FastPath, child: Scope) -> None:
        self._app, self._full_app, self._template = app, full_app, template
        self._fast, self._child = fast, child

    @property
    def template(self) -> str:
        return self._template

    @property
    def child(self) -> Scope:
        return self._child

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = self._app
        scope.update(self._child)
        timer = RequestTimer(self._template)
        status = 500  # what the metrics record if this raises, as HttpMetricsMiddleware does
        started = fell_back = False

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = True
            await send(message)

        async def whole_app(scope: Scope, receive: Receive, send: Send) -> None:
            nonlocal fell_back
            fell_back = True
            timer.cancel()  # the whole stack's metrics count this request
            await self._full_app(scope, receive, send)

        try:
            try:
                answered = await serve_fast(self._fast, scope, receive, tracked_send, whole_app)
            except Exception as exc:
                if not fell_back and not started:
                    response = await unhandled_response(self._app, scope, exc)
                    await response(scope, receive, send)
                raise  # uvicorn logs it, as it does when the server-error middleware re-raises
            if answered is not None:
                status = answered
        finally:
            if not fell_back:
                timer.finish(status)


def lane_of(app: Any) -> DirectLane | None:
    """The direct lane of the FastAPI app inside uvicorn's wrappers, if the app has one."""
    for _ in range(_MAX_WRAPPERS):
        state = getattr(app, "state", None)
        if state is not None:
            lane = getattr(state, "direct_lane", None)
            return lane if isinstance(lane, DirectLane) else None
        app = getattr(app, "app", None)
        if app is None:
            return None
    return None
