"""uvicorn's httptools protocol, with each response's writes sent as one.

uvicorn writes a response's status line and headers when the app sends ``http.response.start`` and
the body when it sends ``http.response.body``: two ``send`` system calls and two TCP segments for
every answer, since uvloop writes at once when the socket buffer is empty (``strace`` on a worker at
64 connections counted 2 writes per request). Here, writes made during one event-loop step are
gathered and sent together at the start of the next, so a forecast answer leaves in one write and the
client wakes once. Nothing else about the protocol changes; ``python -m service`` selects it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn._types import ASGI3Application
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from service.http.direct import DirectCall, lane_of


class CoalescingTransport:
    """Wraps a transport: ``write`` buffers until the loop's next step; everything else passes through."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(bytes(data))

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if self._pending:
            data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
            self._pending.clear()
            self._transport.write(data)

    def get_write_buffer_size(self) -> int:
        return sum(len(p) for p in self._pending) + self._transport.get_write_buffer_size()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def close(self) -> None:
        # A response written just before close (an error, "Connection: close") must still go out.
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._pending.clear()
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        wrapped = CoalescingTransport(transport, self.loop)
        super().connection_made(wrapped)  # type: ignore[arg-type]


class DirectHttpToolsProtocol(CoalescingHttpToolsProtocol):
    """The coalescing protocol, whose inference requests take the direct lane when they may (direct.py).

    Every such request still runs as uvicorn's request-response cycle; only what answers it changes: the
    lane's ASGI callable, or for a forecast the native lane (native.py), which answers from callbacks
    once the body is complete. Pipelined requests queue and answer in order, and shutdown waits for them,
    as before.
    """

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._lane = lane_of(self.app)
        # A native request whose body is still arriving (it is always the newest cycle).
        self._awaiting_body: tuple[RequestResponseCycle, DirectCall] | None = None

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: ASGI3Application) -> None:
        # ``app`` is something else when uvicorn answers by itself (503 over its concurrency limit).
        if self._lane is not None and app is self.app:
            scope: Any = cycle.scope
            direct = self._lane.app_for(scope, app)
            if direct is not None:
                native = self._lane.native
                if native is not None and native.offered(direct.template, scope):
                    if cycle.more_body:
                        self._awaiting_body = (cycle, direct)
                        return
                    if self._begin_native(cycle, direct):
                        return
                app = direct  # type: ignore[assignment]
        super()._start_asgi_task(cycle, app)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        waiting = self._awaiting_body
        if waiting is not None and waiting[0] is self.cycle and not self.cycle.more_body:
            self._awaiting_body = None
            cycle, direct = waiting
            if not self._begin_native(cycle, direct):
                super()._start_asgi_task(cycle, direct)  # type: ignore[arg-type]

    def connection_lost(self, exc: Exception | None) -> None:
        waiting, self._awaiting_body = self._awaiting_body, None
        if waiting is not None:
            # The body never completed: the lane's ASGI path sees the disconnect and counts it (499).
            super()._start_asgi_task(waiting[0], waiting[1])  # type: ignore[arg-type]
        super().connection_lost(exc)

    def _begin_native(self, cycle: RequestResponseCycle, direct: DirectCall) -> bool:
        assert self._lane is not None and self._lane.native is not None
        return self._lane.native.begin(cycle, direct.template, direct.child, self.tasks)
