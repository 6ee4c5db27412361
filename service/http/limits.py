"""Request body size limit as pure ASGI middleware, so it works before anything buffers the body."""

from __future__ import annotations

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.exceptions import ErrorDetail
from service.http.responses import error_content, is_v2_path


class _BodyTooLargeError(Exception):
    pass


class BodySizeLimitMiddleware:
    """413 when Content-Length says too much, or as soon as a streamed (chunked) body passes the limit."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        v2 = is_v2_path(scope["path"])
        if declared is not None and declared > self.max_body_bytes:
            await self._reject(send, f"Content-Length {declared} exceeds {self.max_body_bytes} bytes", v2)
            return

        received = 0
        exceeded = False
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    exceeded = True
                    raise _BodyTooLargeError
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal response_started
            # Once over the limit, whatever the app answers (FastAPI turns body errors into 400) is
            # replaced by our 413.
            if exceeded:
                return
            response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not exceeded:
                raise
        if exceeded and not response_started:
            await self._reject(send, f"request body exceeds {self.max_body_bytes} bytes", v2)

    async def _reject(self, send: Send, message: str, v2: bool) -> None:
        content = (
            {"error": message}
            if v2
            else error_content("payload_too_large", message, [ErrorDetail(("body",), message)])
        )
        body = orjson.dumps(content)
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        # Tell the client we will not read the rest, so keep-alive does not try to reuse the connection.
        headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server already rejects malformed framing; nothing to add here
    return None
