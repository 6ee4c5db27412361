"""HTTP routes of text generation: /v1/generate (seqserve) and /v1/completions (OpenAI-compatible).

Both admit a stream with the model's ``GenerateHandler`` and then only move text: as one JSON answer
(bounded by the request timeout, 504 past it) or as Server-Sent Events. A client that hangs up
cancels its generation and frees its slot at once: the SSE response closes the stream when Starlette
sees the disconnect, and a non-streaming request watches for it while it waits.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from service import metrics
from service.config import Settings
from service.exceptions import ErrorDetail, InferenceError, InferenceTimeoutError, InvalidInputError
from service.http.fast_json import FastJSONRoute
from service.http.responses import OrjsonResponse, error_content
from service.http.schemas_generate import (
    CompletionRequest,
    CompletionResponse,
    GenerateRequest,
    GenerateResponse,
    unsupported_completion_fields,
)
from service.http.v1 import _errors, _registry, _settings
from service.runtime.registry import ModelRecord
from service.tasks.generate import FieldNames, GenerateHandler
from service.tasks.generate_stream import Chunk, GenerationRequest, GenerationStream
from service.tasks.sampling import SamplingParams

router = APIRouter(route_class=FastJSONRoute)
T = TypeVar("T")

COMPLETION_FIELDS = FieldNames(prompt="prompt", max_new_tokens="max_tokens")
# Status of a request whose client left before the answer (nginx's convention); nobody receives it.
CLIENT_CLOSED_REQUEST = 499
_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
_SSE_RESPONSE = {
    "description": (
        "JSON; with stream: true, text/event-stream: one `data: {json}` event per chunk of text, the last "
        "one with finish_reason (docs/generation.md)."
    ),
    # Each Server-Sent Event, as a client parses it: its data line holds the JSON chunk.
    "content": {
        "text/event-stream": {
            "schema": {
                "type": "object",
                "required": ["data"],
                "properties": {"event": {"type": "string"}, "data": {"type": "string"}},
            }
        }
    },
}


class EventStreamResponse(StreamingResponse):
    """SSE whose generation is closed however the response ends (finished, client gone, error)."""

    media_type = "text/event-stream"

    def __init__(self, content: AsyncIterator[bytes], stream: GenerationStream) -> None:
        super().__init__(content, headers=_SSE_HEADERS)
        self._stream = stream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._stream.close()


def _sse(payload: Any) -> bytes:
    # Generated text is made of vocabulary characters, so orjson never meets a lone surrogate here.
    return b"data: " + orjson.dumps(payload) + b"\n\n"


@router.post(
    "/v1/generate",
    response_model=GenerateResponse,
    response_class=OrjsonResponse,
    responses={**_errors(400, 401, 413, 415, 422, 503, 504), 200: _SSE_RESPONSE},
    summary="Generate text from a prompt (optionally streamed as Server-Sent Events)",
)
async def generate(body: GenerateRequest, request: Request) -> Response:
    record, handler = _generate_model(request, body.model)
    sampling = SamplingParams(body.temperature, body.top_k, body.top_p, body.seed)
    wanted = GenerationRequest(body.prompt, body.max_new_tokens, sampling, tuple(body.stop))
    stream = _start(handler, record, wanted, FieldNames())
    settings = _settings(request)
    model = {"name": record.name, "version": record.version}
    if body.stream:
        return EventStreamResponse(_generate_events(stream, settings, record.name), stream)
    outcome = await _collect_or_disconnect(stream, request, settings, record.name)
    if outcome is None:
        return Response(status_code=CLIENT_CLOSED_REQUEST)
    text, last = outcome
    return OrjsonResponse(
        {"model": model, "text": text, "tokens": last.tokens, "finish_reason": last.finish_reason}
    )


@router.post(
    "/v1/completions",
    response_model=CompletionResponse,
    response_class=OrjsonResponse,
    responses={**_errors(400, 401, 413, 415, 422, 503, 504), 200: _SSE_RESPONSE},
    summary="OpenAI-compatible text completion (streams end with data: [DONE])",
)
async def completions(body: CompletionRequest, request: Request) -> Response:
    record, handler = _generate_model(request, body.model)
    unsupported = unsupported_completion_fields(body)
    if unsupported:
        details = [ErrorDetail((name,), f"{value!r} is not supported here") for name, value in unsupported]
        error = InvalidInputError(
            "unsupported completion options: " + ", ".join(n for n, _ in unsupported), details
        )
        metrics.count_rejection(record.name, error)
        raise error
    stop = (body.stop,) if isinstance(body.stop, str) else tuple(body.stop or ())
    temperature = 1.0 if body.temperature is None else body.temperature
    sampling = SamplingParams(temperature, body.top_k, 1.0 if body.top_p is None else body.top_p, body.seed)
    max_tokens = 16 if body.max_tokens is None else body.max_tokens
    wanted = GenerationRequest(body.prompt, max_tokens, sampling, stop)
    stream = _start(handler, record, wanted, COMPLETION_FIELDS)
    settings = _settings(request)
    completion_id = f"cmpl-{secrets.token_hex(12)}"
    created = int(time.time())

    def envelope(choices: list[dict[str, Any]], usage: dict[str, int] | None) -> dict[str, Any]:
        return {
            "id": completion_id, "object": "text_completion", "created": created, "model": record.name,
            "choices": choices, "usage": usage, "system_fingerprint": None,
        }  # fmt: skip

    def usage(completion_tokens: int) -> dict[str, int]:
        return {
            "prompt_tokens": stream.prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": stream.prompt_tokens + completion_tokens,
        }

    if body.stream:
        include_usage = body.stream_options is not None and body.stream_options.include_usage
        events = _completion_events(stream, settings, record.name, envelope, usage if include_usage else None)
        return EventStreamResponse(events, stream)
    outcome = await _collect_or_disconnect(stream, request, settings, record.name)
    if outcome is None:
        return Response(status_code=CLIENT_CLOSED_REQUEST)
    text, last = outcome
    choice = {"text": text, "index": 0, "finish_reason": last.finish_reason, "logprobs": None}
    return OrjsonResponse(envelope([choice], usage(last.tokens)))


def _generate_model(request: Request, name: str | None) -> tuple[ModelRecord, GenerateHandler]:
    record = _registry(request).resolve(name, "generate")
    handler = record.handler
    if not isinstance(handler, GenerateHandler) or record.version is None:
        raise InferenceError(f"model {record.name!r} has no generate handler")
    return record, handler


def _start(
    handler: GenerateHandler, record: ModelRecord, wanted: GenerationRequest, names: FieldNames
) -> GenerationStream:
    try:
        return handler.start(wanted, names)
    except Exception as exc:
        metrics.count_rejection(record.name, exc)
        raise


async def _collect(stream: GenerationStream) -> tuple[str, Chunk]:
    texts: list[str] = []
    while True:
        chunk = await stream.next_chunk()
        texts.append(chunk.text)
        if chunk.finish_reason is not None:
            return "".join(texts), chunk


async def _collect_or_disconnect(
    stream: GenerationStream, request: Request, settings: Settings, model: str
) -> tuple[str, Chunk] | None:
    """The whole generation within the request timeout, or None once the client has hung up."""
    try:
        return await _unless_disconnected(_within_budget(_collect(stream), settings, model), request)
    finally:
        stream.close()


async def _within_budget(call: Awaitable[T], settings: Settings, model: str) -> T:
    """Like v1's request timeout, with the generation's own budget (generation_timeout_seconds)."""
    try:
        async with asyncio.timeout(settings.generation_timeout_seconds):
            return await call
    except TimeoutError as exc:
        error = _timeout_error(settings)
        metrics.count_rejection(model, error)
        raise error from exc
    except Exception as exc:
        metrics.count_rejection(model, exc)
        raise


def _timeout_error(settings: Settings) -> InferenceTimeoutError:
    limit = settings.generation_timeout_seconds
    return InferenceTimeoutError(f"generation took longer than {limit} s (generation_timeout_seconds)")


async def _unless_disconnected(call: Awaitable[T], request: Request) -> T | None:
    work = asyncio.ensure_future(call)
    # The body is read, so the next receive() returns only when the client disconnects.
    watch = asyncio.ensure_future(_disconnected(request.receive))
    try:
        await asyncio.wait({work, watch}, return_when=asyncio.FIRST_COMPLETED)
        if work.done():
            return work.result()
        return None
    finally:
        for task in (work, watch):
            task.cancel()
        await asyncio.gather(work, watch, return_exceptions=True)


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _bounded_chunks(
    stream: GenerationStream, settings: Settings, model: str
) -> AsyncIterator[Chunk | Exception]:
    """Chunks until the last one; a timeout or model failure comes last as the exception it was."""
    # A timer rather than a timeout scope: a timeout must never interrupt the response's own send.
    loop = asyncio.get_running_loop()
    timer = loop.call_at(
        loop.time() + settings.generation_timeout_seconds, stream.expire, _timeout_error(settings)
    )
    try:
        while True:
            try:
                chunk = await stream.next_chunk()
            except InferenceTimeoutError as exc:
                metrics.count_rejection(model, exc)
                yield exc
                return
            except InferenceError as exc:
                yield exc
                return
            yield chunk
            if chunk.finish_reason is not None:
                return
    finally:
        timer.cancel()


async def _generate_events(stream: GenerationStream, settings: Settings, model: str) -> AsyncIterator[bytes]:
    async for item in _bounded_chunks(stream, settings, model):
        if isinstance(item, Chunk):
            yield _sse({"text": item.text, "tokens": item.tokens, "finish_reason": item.finish_reason})
        else:
            reason = "timeout" if isinstance(item, InferenceTimeoutError) else "error"
            yield _sse({"text": "", "finish_reason": reason, **_error_payload(item)})


async def _completion_events(
    stream: GenerationStream,
    settings: Settings,
    model: str,
    envelope: Callable[[list[dict[str, Any]], dict[str, int] | None], dict[str, Any]],
    usage: Callable[[int], dict[str, int]] | None,
) -> AsyncIterator[bytes]:
    async for item in _bounded_chunks(stream, settings, model):
        if isinstance(item, Chunk):
            choice = {"text": item.text, "index": 0, "finish_reason": item.finish_reason, "logprobs": None}
            yield _sse(envelope([choice], None))
            if item.finish_reason is not None and usage is not None:
                yield _sse(envelope([], usage(item.tokens)))
        else:
            # The openai client raises an APIError for an event carrying "error".
            yield _sse(_error_payload(item))
    yield b"data: [DONE]\n\n"


def _error_payload(exc: Exception) -> dict[str, Any]:
    if isinstance(exc, InferenceTimeoutError):
        return error_content(exc.error_type, exc.message)
    # A model fault: the details go to the log, not to the client.
    return error_content("internal_error", "generation failed on the server")
