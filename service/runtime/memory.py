"""Giving memory back after a model is unloaded, so the process's RSS falls and stays down."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging

logger = logging.getLogger(__name__)


def release_freed_memory() -> None:
    """Collect what the unloaded model left, then hand glibc's free pages back to the kernel.

    Start-up freezes its objects (service.app.settle_garbage_collector), so a reference cycle that
    pins an unloaded session would never be collected; unfreeze, collect fully, and freeze again.
    glibc keeps freed heap pages for reuse; ``malloc_trim(0)`` returns them, or RSS would not fall.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    name = ctypes.util.find_library("c")
    if name is None:
        return
    try:
        libc = ctypes.CDLL(name)
        libc.malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (e.g. musl): nothing to trim
        logger.debug("malloc_trim unavailable; freed memory stays with the allocator")
