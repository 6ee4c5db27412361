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

from service.http.direct import lane_of


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

    Every request still runs as uvicorn's request-response cycle; only the ASGI app the cycle runs
    changes, so pipelined requests queue and answer in order, and shutdown waits for them, as before.
    """

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._lane = lane_of(self.app)

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: ASGI3Application) -> None:
        # ``app`` is something else when uvicorn answers by itself (503 over its concurrency limit).
        if self._lane is not None and app is self.app:
            direct = self._lane.app_for(cycle.scope, app)  # type: ignore[arg-type]
            if direct is not None:
                app = direct  # type: ignore[assignment]
        super()._start_asgi_task(cycle, app)
