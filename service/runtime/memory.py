"""Handing freed heap pages back to the kernel, so a worker's resident set (and its peak) stays low."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import logging
import os
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import anyio
import anyio.to_thread

logger = logging.getLogger(__name__)


def release_freed_memory(retired: Sequence[weakref.ref[Any]]) -> bool:
    """Collect what the unloaded model left, then hand glibc's free pages back to the kernel.

    Start-up freezes its objects (service.app.settle_garbage_collector), so a reference cycle that
    pins an unloaded session would never be collected; unfreeze and collect fully. Freezing again is
    safe only once ``retired`` (the unloaded runners) are gone: a request that resolved the model just
    before the unload may still hold it, and if its frames form a cycle (an exception and its
    traceback do), freezing them would pin the session for good. Returns whether they were gone; if
    not, the collector stays unfrozen and nothing is trimmed.
    """
    gc.unfreeze()
    gc.collect()
    if any(ref() is not None for ref in retired):
        return False
    gc.freeze()
    trim_heap()
    return True


async def release_retired(retired: Sequence[weakref.ref[Any]], patience_seconds: float) -> bool:
    """``release_freed_memory`` until the retired objects are gone, backing off up to 2 s between tries.

    Gives up after ``patience_seconds`` (the request timeout: no request holds a model longer), leaving
    the collector unfrozen so that a later collection frees what the straggler let go.
    """
    deadline = time.monotonic() + patience_seconds
    pause_seconds = 0.05
    while not await anyio.to_thread.run_sync(release_freed_memory, retired):
        if time.monotonic() >= deadline:
            logger.warning("an unloaded model is still referenced after %.1f s", patience_seconds)
            return False
        await anyio.sleep(pause_seconds)
        pause_seconds = min(2.0, pause_seconds * 2)
    return True


async def release_memory_every(interval_seconds: float, check_arena: Callable[[], object]) -> None:
    """Every ``interval_seconds`` until cancelled: ``trim_heap`` on a worker thread, and ``check_arena``
    (``service.runtime.session.ArenaShrink.check``: the ORT arena's free regions back once a model went
    quiet).

    glibc gives each thread that allocates its own arena (here: each model's batch thread), and pages
    freed in one arena are reused only by that arena's threads. After a burst on one model its arena
    keeps them (measured at the end of ``bin/bench``: 6 MB per worker) while the next model's traffic
    grows another arena; trimming returns them in between. A trim takes about 0.6 ms when it has pages
    to return and 0.04 ms when not, off the event loop.
    """
    while True:
        await anyio.sleep(interval_seconds)
        check_arena()
        await anyio.to_thread.run_sync(trim_heap)


# glibc's mallopt parameter number (malloc.h) and the value pinned by pin_mmap_threshold.
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 1 << 20


def pin_mmap_threshold() -> bool:
    """Serve allocations of 1 MiB and more with their own mmap, returned to the kernel on free.

    glibc raises its mmap threshold to the size of any mmap'd block that is freed, up to 32 MiB. Loading
    a model frees its parsed protobuf (23 MB for a sentiment model), so from then on every allocation
    below that size came from the heap and stayed resident after being freed. Pinning the threshold
    stops that; measured -13 MB steady and -5 MB peak RSS per worker after load (docs/memory.md).
    Skipped when the operator set glibc's own knob (MALLOC_MMAP_THRESHOLD_ or GLIBC_TUNABLES).
    Returns whether it was applied.
    """
    if "MALLOC_MMAP_THRESHOLD_" in os.environ or "GLIBC_TUNABLES" in os.environ:
        return False
    mallopt = _libc_function("mallopt")
    return mallopt is not None and mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1


def trim_heap() -> None:
    """``malloc_trim(0)``: return glibc's free heap pages to the kernel.

    glibc keeps freed pages for reuse, so RSS does not fall by itself. Building a session frees a
    parsed copy of the model (as large as its weights) and pre-packing scratch into holes that later,
    differently sized allocations cannot all reuse; trimming after each model kept about 20 MB of
    them out of every worker (docs/memory.md). A no-op where the C library has no malloc_trim (musl).
    """
    trim = _libc_function("malloc_trim")
    if trim is not None:
        trim(0)


@functools.cache
def _libc_function(name: str) -> ctypes._NamedFuncPointer | None:
    # find_library runs ldconfig (milliseconds), so look it up once per process.
    path = ctypes.util.find_library("c")
    if path is None:
        return None
    try:
        return getattr(ctypes.CDLL(path), name)  # type: ignore[no-any-return]
    except (OSError, AttributeError):  # not glibc (e.g. musl): nothing to tune
        logger.debug("%s unavailable; freed memory stays with the allocator", name)
        return None
