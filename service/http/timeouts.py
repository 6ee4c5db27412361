"""The inference time budget of one request, and rejection counting per model, for every protocol."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from service.exceptions import InferenceTimeoutError
from service.metrics import count_rejection

T = TypeVar("T")


async def within_timeout(call: Awaitable[T], timeout_seconds: float, model: str) -> T:
    # Rejections (invalid input, timeout) are counted per model here, where the model is known.
    # asyncio.timeout rather than anyio.fail_after: same semantics on asyncio, a fraction of the cost.
    try:
        async with asyncio.timeout(timeout_seconds):
            return await call
    except TimeoutError as exc:
        timeout = InferenceTimeoutError(f"inference took longer than {timeout_seconds} s")
        count_rejection(model, timeout)
        raise timeout from exc
    except Exception as exc:
        count_rejection(model, exc)
        raise
