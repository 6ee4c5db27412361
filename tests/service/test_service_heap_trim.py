"""The periodic heap trim (SEQSERVE_HEAP_TRIM_SECONDS): pages a thread freed in its own glibc arena go back
to the kernel, by a direct call and by the worker's background loop, and the app runs the loop only when
asked to. The fragmentation is built the way a batch thread builds it: many blocks below the mmap
threshold, allocated on one thread, all freed except the last, which keeps glibc from shrinking the
arena's top by itself."""

import asyncio
import platform
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from svc_helpers import make_settings

from service.app import create_app
from service.runtime.memory import trim_heap, trim_heap_every

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")

BLOCK_BYTES = 64 * 1024  # below glibc's default 128 kB mmap threshold: served from the thread's arena
BLOCKS = 400  # 26 MB in all


def anon_rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no RssAnon in /proc/self/status")


@pytest.fixture
def freed_arena_pages() -> Iterator[None]:
    """26 MB allocated and freed on another thread, its last block kept: the arena holds the pages."""
    kept: list[bytearray] = []

    def fragment() -> None:
        blocks = [bytearray(BLOCK_BYTES) for _ in range(BLOCKS)]  # zero-filled: every page is touched
        kept.append(blocks[-1])
        del blocks

    thread = threading.Thread(target=fragment)
    thread.start()
    thread.join()
    yield
    kept.clear()


def test_trim_returns_pages_another_thread_freed(freed_arena_pages: None) -> None:
    before = anon_rss_bytes()
    trim_heap()
    assert before - anon_rss_bytes() > BLOCKS * BLOCK_BYTES // 2


@pytest.mark.anyio
async def test_the_background_loop_trims_without_being_called(freed_arena_pages: None) -> None:
    before = anon_rss_bytes()
    loop = asyncio.ensure_future(trim_heap_every(0.05))
    try:
        for _ in range(100):
            await asyncio.sleep(0.05)
            if before - anon_rss_bytes() > BLOCKS * BLOCK_BYTES // 2:
                break
        assert before - anon_rss_bytes() > BLOCKS * BLOCK_BYTES // 2
    finally:
        loop.cancel()
    with pytest.raises(asyncio.CancelledError):
        await loop


@pytest.mark.parametrize(("seconds", "trims"), [(0.05, True), (0.0, False)])
def test_the_app_trims_only_when_configured(
    freed_arena_pages: None, seconds: float, trims: bool, tmp_path: Path
) -> None:
    # A repository of no models: the lifespan starts and stops quickly, and only the trim loop differs.
    settings = make_settings(tmp_path, heap_trim_seconds=seconds, drift_enabled=False)
    with TestClient(create_app(settings)) as client:
        before = anon_rss_bytes()
        threading.Event().wait(0.5)
        assert client.get("/healthz").status_code == 200
        released = before - anon_rss_bytes()
    assert (released > BLOCKS * BLOCK_BYTES // 2) is trims
