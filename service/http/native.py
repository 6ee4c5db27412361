"""The native lane: forecasts answered from the HTTP protocol's callbacks, without an ASGI task.

The direct lane (direct.py) takes an inference request past the middleware stack, but the request
still runs as an ASGI application in a task of its own: uvicorn's receive and send messages,
Starlette's request and response objects, the endpoint, and an asyncio timeout around the handler's
coroutines. For a forecast, whose model run costs about 0.3 ms of CPU, those layers were about a fifth
of the event loop's CPU per request (docs/performance.md, round 7).

Here a forecast request that the direct lane takes (/v1/forecast, and V2 ``infer`` of a forecast model)
is answered from callbacks. Once its body is complete, the route's admission (native_routes.py) checks
it with the endpoint's own decoding and the handler's own checks, and queues its rows in the model's
batcher; when their future is done, the answer is written through uvicorn's request-response cycle, so
keep-alive, pipelining, ``Connection: close`` and graceful shutdown behave as before. The answer's bytes
are the endpoint's: the same payload and encoding functions.

Only a request that the endpoint would answer from one queued item is taken. Whatever else is known
before the rows are queued goes to the direct lane's ASGI path, with its body still in the cycle, and is
answered there exactly as before: a body the decoder or the model refuses, an unknown or unready model,
series of several lengths, a full queue, a compressed body, an ``Expect`` header, a body over uvicorn's
64 KiB read buffer. What can only go wrong later (the time budget, a failed batch, a non-finite
forecast) is answered by the app's exception handlers, as the endpoint's exceptions are, and counted
the same way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from starlette.requests import Request
from starlette.types import Scope
from uvicorn.protocols.http.flow_control import HIGH_WATER_LIMIT
from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

from service.config import Settings
from service.exceptions import InferenceTimeoutError
from service.http.express import handler_for, unhandled_response
from service.metrics import RequestTimer, count_rejection
from service.runtime.inference import Arrays, ModelRunner

Headers = list[tuple[bytes, bytes]]
_JSON = b"application/json"
logger = logging.getLogger("uvicorn.error")


@dataclass(frozen=True, slots=True)
class Admitted:
    """A request a route's admission took: what to queue, and how to answer the outputs."""

    model: str  # for the rejection counters
    runner: ModelRunner
    feeds: Arrays
    timeout_seconds: float
    # The model's outputs -> the 200 answer's body and headers; raises as the endpoint would.
    answer: Callable[[Arrays], tuple[bytes, Headers]]
    # Metrics the endpoint records on the way in (input lengths), run once the request is taken.
    on_taken: Callable[[], None]


# (native lane, the request's cycle, the route's child scope) -> the taken request, or None to decline.
Admission = Callable[["NativeLane", RequestResponseCycle, Scope], Admitted | None]


def takes_headers(scope: Scope, json_only: bool) -> bool:
    """A body uvicorn buffers whole, with no ``Expect`` and no ``Content-Encoding``; for JSON-only routes
    (the /v1 fast paths) a plain ``application/json`` type.

    uvicorn answers ``Expect: 100-continue`` from the application's first receive, and it stops reading a
    body past its high-water mark until the application receives; with no task to receive, such requests
    would wait for ever, so they take the ASGI path, as do bodies the endpoint must inflate.
    """
    content_type: bytes | None = None
    length: bytes | None = None
    for name, value in scope["headers"]:
        # The first of repeated headers counts, as Starlette's Headers.get and the body limit read them.
        if name == b"content-type":
            content_type = value if content_type is None else content_type
        elif name == b"content-length":
            length = value if length is None else length
        elif name in (b"expect", b"content-encoding"):
            return False
    if json_only and (content_type is None or content_type.split(b";", 1)[0].strip().lower() != _JSON):
        return False
    return length is not None and length.isdigit() and int(length) <= HIGH_WATER_LIMIT


class NativeLane:
    def __init__(self, app: FastAPI, settings: Settings, routes: dict[str, tuple[Admission, bool]]) -> None:
        self.app = app
        self.settings = settings
        # Route template -> (its admission, whether it takes only application/json bodies).
        self._routes = routes

    def offered(self, template: str, scope: Scope) -> bool:
        """Whether the route has an admission and the request's headers let it wait for the body here."""
        route = self._routes.get(template)
        return route is not None and takes_headers(scope, json_only=route[1])

    def begin(
        self, cycle: RequestResponseCycle, template: str, child: Scope, tasks: set[asyncio.Task[None]]
    ) -> bool:
        """Take the request whose body is complete (True), or leave it to the ASGI path (False)."""
        admitted = self._routes[template][0](self, cycle, child)
        if admitted is None:
            return False
        # Taken: from here on this request is answered and counted here, never by the ASGI path.
        admitted.on_taken()
        scope: Any = cycle.scope
        scope["app"] = self.app
        scope.update(child)
        _Answer(self.app, cycle, admitted, RequestTimer(template), tasks)
        return True


class _Answer:
    """One taken request: waits for its rows' outputs or its time budget, whichever comes first."""

    __slots__ = ("_admitted", "_app", "_cycle", "_deadline", "_future", "_tasks", "_timer")

    def __init__(
        self,
        app: FastAPI,
        cycle: RequestResponseCycle,
        admitted: Admitted,
        timer: RequestTimer,
        tasks: set[asyncio.Task[None]],
    ) -> None:
        self._app, self._cycle, self._admitted, self._timer, self._tasks = app, cycle, admitted, timer, tasks
        self._future = admitted.runner.enqueue(admitted.feeds)
        self._deadline = self._future.get_loop().call_later(admitted.timeout_seconds, self._time_out)
        self._future.add_done_callback(self._done)

    def _done(self, future: asyncio.Future[Arrays]) -> None:
        self._deadline.cancel()
        if future.cancelled():
            return  # the time budget ran out, and _time_out answers
        error = future.exception()
        if error is not None:
            self._fail(error)
            return
        try:
            body, headers = self._admitted.answer(future.result())
        except Exception as exc:
            self._fail(exc)
            return
        self._send_ok(body, headers)

    def _time_out(self) -> None:
        # The queued rows leave the queue, as when the endpoint's asyncio timeout cancels its submit.
        self._future.cancel()
        timeout = InferenceTimeoutError(f"inference took longer than {self._admitted.timeout_seconds} s")
        count_rejection(self._admitted.model, timeout)
        self._spawn(self._answer_error(timeout))

    def _fail(self, exc: BaseException) -> None:
        count_rejection(self._admitted.model, exc)  # within_timeout counts what the handler raises
        self._spawn(self._answer_error(exc))

    def _send_ok(self, body: bytes, headers: Headers) -> None:
        cycle = self._cycle
        start = {"type": "http.response.start", "status": 200, "headers": headers}
        end = {"type": "http.response.body", "body": body, "more_body": False}
        if cycle.flow.write_paused and not cycle.disconnected:
            self._spawn(self._send_later(start, end))  # the client reads slowly: wait for its socket
            return
        # uvicorn's send only awaits while writing is paused, so each call finishes in one step.
        _finish_now(cycle.send(start))  # type: ignore[arg-type]
        _finish_now(cycle.send(end))  # type: ignore[arg-type]
        self._timer.finish(200)

    async def _send_later(self, start: dict[str, Any], end: dict[str, Any]) -> None:
        try:
            await self._cycle.send(start)  # type: ignore[arg-type]
            await self._cycle.send(end)  # type: ignore[arg-type]
        finally:
            self._timer.finish(200)

    async def _answer_error(self, exc: BaseException) -> None:
        """What the direct lane answers when the endpoint raises ``exc``: the app's handler for it."""
        cycle, status = self._cycle, 500
        scope: Any = cycle.scope
        try:
            handler = handler_for(scope, exc) if isinstance(exc, Exception) else None
            if handler is not None:
                response = await handler(Request(scope, cycle.receive), exc)  # type: ignore[arg-type]
            else:
                logger.error("Exception in ASGI application\n", exc_info=exc)
                response = await unhandled_response(self._app, scope, exc)  # type: ignore[arg-type]
            await response(scope, cycle.receive, cycle.send)  # type: ignore[arg-type]
            status = response.status_code
            if handler is None:
                cycle.transport.close()  # as uvicorn does after an application error
        finally:
            self._timer.finish(status)

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        # In the server's task set, so that shutdown waits for it as for any request.
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _finish_now(coroutine: Coroutine[Any, Any, None]) -> None:
    try:
        coroutine.send(None)
    except StopIteration:
        return
    coroutine.close()
    raise RuntimeError("uvicorn's send waited although writing was not paused")
