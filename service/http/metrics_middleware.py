"""Route-level HTTP metrics as pure ASGI middleware.

It sits outside every other middleware, so it also counts answers that never reach a route: the body
limit's 413, unknown paths, and unhandled errors (recorded as 500, which Starlette's outermost error
middleware then sends). The ``route`` label is the matched route's template (``/v1/models/{name}``),
never the raw path, so a client cannot create series at will; anything else is ``unmatched``.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.metrics import UNMATCHED_ROUTE, RequestTimer, register_routes

_TEMPLATED_CACHE_ENTRIES = 1024


class HttpMetricsMiddleware:
    def __init__(self, app: ASGIApp, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        # (route, template) pairs; entries without a template (FastAPI's wrapper of an included router)
        # are skipped, which is why app.py also passes the router's own routes.
        self._routes = [(r, path) for r in routes if isinstance(path := getattr(r, "path", None), str)]
        self._registered = False
        # (method, path) -> template, for requests that fully matched a route without path parameters:
        # bounded by the app's own routes, and it spares the hot endpoints a regex per route per request.
        self._static: dict[tuple[str, str], str] = {}
        # The same for paths with parameters (/v2/models/m4-hourly/infer): clients choose those paths, so
        # this cache is bounded and simply emptied when full; the templates it maps to stay bounded.
        self._templated: dict[tuple[str, str], str] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._registered:
            # First call is the lifespan startup, when every route exists: create their series at 0.
            register_routes([*self._templates(), UNMATCHED_ROUTE])
            self._registered = True
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        timer = RequestTimer(self._route_template(scope))
        status = 500  # what the client gets if the app raises before starting a response

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            timer.finish(status)

    def _templates(self) -> list[str]:
        return [path for _, path in self._routes]

    def _route_template(self, scope: Scope) -> str:
        key = (scope.get("method", ""), scope["path"])
        cached = self._static.get(key) or self._templated.get(key)
        if cached is not None:
            return cached
        # Same matching the router does; a PARTIAL match (wrong method, answered 405) keeps the template.
        partial: str | None = None
        for route, path in self._routes:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                if path == scope["path"]:
                    self._static[key] = path
                else:
                    if len(self._templated) >= _TEMPLATED_CACHE_ENTRIES:
                        self._templated.clear()
                    self._templated[key] = path
                return path
            if match is Match.PARTIAL and partial is None:
                partial = path
        return partial or UNMATCHED_ROUTE
