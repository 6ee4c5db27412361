"""The native lane: a forecast answered from the HTTP protocol's callbacks, without an ASGI task.

The direct lane (direct.py) takes an inference request past the middleware stack, but the request
still runs as an ASGI application in a task of its own: uvicorn's receive and send messages,
Starlette's request and response objects, FastAPI's endpoint, and an asyncio timeout around the
handler's coroutines. For a forecast, whose model run costs about 0.3 ms of CPU, those layers were
about a third of the event loop's CPU per request (docs/performance.md, round 7).

Here a /v1/forecast request that the direct lane takes is answered from callbacks. Once its body is
complete it is checked with the endpoint's own pydantic model and the handler's own checks, its rows
go into the model's batcher queue, and when their future is done the answer is written through
uvicorn's request-response cycle, so keep-alive, pipelining, ``Connection: close`` and graceful
shutdown behave as before. The answer is the endpoint's: the same payload function and JSON rendering.

Only a request that the endpoint would answer from one queued item is taken. Anything else that is
known before the rows are queued goes to the direct lane's ASGI path, with its body still in the
cycle, and is answered there exactly as before: a body the schema or the model refuses, an unknown
or unready model, series of several lengths, a full queue, an ``Expect`` header, a body over uvicorn's
64 KiB read buffer. What can only go
wrong later (the time budget, a failed batch, a non-finite forecast) is answered by the app's
exception handlers, as the endpoint's exceptions are, and counted the same way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from fastapi import FastAPI
from starlette.requests import Request
from starlette.types import Scope
from uvicorn.protocols.http.flow_control import HIGH_WATER_LIMIT
from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

from service.config import Settings
from service.exceptions import InferenceTimeoutError, InvalidInputError
from service.http.express import handler_for, unhandled_response
from service.http.fast_v1 import decode_body
from service.http.responses import render_json
from service.http.schemas_v1 import ForecastRequest
from service.http.v1 import forecast_payload
from service.metrics import RequestTimer, count_rejection
from service.runtime.registry import ModelRecord
from service.tasks.forecast import Float32Array, ForecastHandler, ForecastQuery, PreparedForecast, SeriesInput

# The route templates answered here.
NATIVE_ROUTES = frozenset({"/v1/forecast"})
_JSON = b"application/json"
_CONTENT_TYPE = b"content-type"
logger = logging.getLogger("uvicorn.error")


def takes_headers(scope: Scope) -> bool:
    """A plain JSON body (as the fast path requires) that uvicorn buffers whole, and no ``Expect``.

    uvicorn answers ``Expect: 100-continue`` from the application's first receive, and it stops reading
    a body past its high-water mark until the application receives; with no task to receive, such
    requests would wait for ever, so they take the ASGI path.
    """
    content_type: bytes | None = None
    length: bytes | None = None
    for name, value in scope["headers"]:
        # The first of repeated headers counts, as Starlette's Headers.get and the body limit read them.
        if name == _CONTENT_TYPE:
            content_type = value if content_type is None else content_type
        elif name == b"content-length":
            length = value if length is None else length
        elif name == b"expect":
            return False
    return (
        content_type is not None
        and content_type.split(b";", 1)[0].strip().lower() == _JSON
        and length is not None
        and length.isdigit()
        and int(length) <= HIGH_WATER_LIMIT
    )


class NativeForecast:
    def __init__(self, app: FastAPI, settings: Settings) -> None:
        self._app = app
        self._timeout_seconds = settings.request_timeout_seconds

    def begin(
        self, cycle: RequestResponseCycle, template: str, child: Scope, tasks: set[asyncio.Task[None]]
    ) -> bool:
        """Take the request whose body is complete (True), or leave it to the ASGI path (False)."""
        body = decode_body(ForecastRequest, cycle.body)
        if body is None:
            return False
        record = self._app.state.registry.ready(body.model, "forecast")
        handler = None if record is None else record.handler
        if not isinstance(handler, ForecastHandler) or record is None or record.version is None:
            return False
        query = ForecastQuery(
            series=[SeriesInput(values=s.values, id=s.id) for s in body.series],
            horizon=body.horizon,
            quantiles=body.quantiles,
        )
        try:
            prepared = handler.prepare(query)
        except InvalidInputError:
            return False
        batch = handler.one_batch(prepared)
        if batch is None or not handler.runner.can_enqueue(batch.shape[0]):
            return False
        # Taken: from here on this request is answered and counted here, never by the ASGI path.
        handler.observe_lengths(query)
        del body, query  # the float lists go; the rows are float32 (docs/memory.md)
        scope: Any = cycle.scope
        scope["app"] = self._app
        scope.update(child)
        answer = _Answer(self, cycle, record, handler, prepared, batch, RequestTimer(template), tasks)
        answer.start(handler.runner.enqueue({handler.input_name: batch}))
        return True

    @property
    def timeout_seconds(self) -> float:
        return self._timeout_seconds

    @property
    def app(self) -> FastAPI:
        return self._app


class _Answer:
    """One taken request: waits for its rows' outputs or its time budget, whichever comes first."""

    __slots__ = ("_batch", "_cycle", "_deadline", "_future", "_handler", "_lane", "_prepared", "_record",
                 "_tasks", "_timer")  # fmt: skip

    def __init__(
        self,
        lane: NativeForecast,
        cycle: RequestResponseCycle,
        record: ModelRecord,
        handler: ForecastHandler,
        prepared: PreparedForecast,
        batch: Float32Array,
        timer: RequestTimer,
        tasks: set[asyncio.Task[None]],
    ) -> None:
        self._lane, self._cycle, self._record, self._handler = lane, cycle, record, handler
        self._prepared, self._batch, self._timer, self._tasks = prepared, batch, timer, tasks
        self._future: asyncio.Future[Any] | None = None
        self._deadline: asyncio.TimerHandle | None = None

    def start(self, future: asyncio.Future[Any]) -> None:
        self._future = future
        self._deadline = future.get_loop().call_later(self._lane.timeout_seconds, self._time_out)
        future.add_done_callback(self._done)

    def _done(self, future: asyncio.Future[Any]) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        if future.cancelled():
            return  # the time budget ran out, and _time_out answers
        error = future.exception()
        if error is not None:
            self._fail(error)
            return
        handler = self._handler
        try:
            out = future.result()[handler.output_name]
            handler.drift.observe(self._batch, out)  # queued only, as in the endpoint's path
            forecasts = handler.finish(self._prepared, list(out))
            body = render_json(forecast_payload(self._record.name, self._record.version or 0, forecasts))
        except Exception as exc:
            self._fail(exc)
            return
        self._send_ok(body)

    def _time_out(self) -> None:
        # The queued rows leave the queue, as when the endpoint's asyncio timeout cancels its submit.
        assert self._future is not None
        self._future.cancel()
        timeout = InferenceTimeoutError(f"inference took longer than {self._lane.timeout_seconds} s")
        count_rejection(self._record.name, timeout)
        self._spawn(self._answer_error(timeout))

    def _fail(self, exc: BaseException) -> None:
        count_rejection(self._record.name, exc)  # within_timeout counts what the handler raises
        self._spawn(self._answer_error(exc))

    def _send_ok(self, body: bytes) -> None:
        cycle = self._cycle
        headers = [(b"content-length", str(len(body)).encode()), (_CONTENT_TYPE, _JSON)]
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
                response = await unhandled_response(self._lane.app, scope, exc)  # type: ignore[arg-type]
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
