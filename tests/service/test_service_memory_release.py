"""The periodic memory release (SEQSERVE_MEMORY_RELEASE_SECONDS).

glibc: pages a thread freed in its own malloc arena go back to the kernel, by a direct call and by the
worker's background loop, and the app runs the loop only when asked to. The fragmentation is built the
way a batch thread builds it: many blocks below the mmap threshold, allocated on one thread, all freed
except the last, which keeps glibc from shrinking the arena's top by itself.

ORT: the shared CPU arena keeps what a burst on one model grew, until a run carries the shrink option;
with the shared arena, a run of another model frees it. Real models, real sessions.
"""

import asyncio
import platform
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from svc_helpers import MODELS, make_settings, read_m4_series

from service.app import create_app
from service.runtime.memory import release_memory_every, trim_heap
from service.runtime.providers import CPU
from service.runtime.session import ArenaShrink, build_session

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
    checks: list[None] = []
    loop = asyncio.ensure_future(release_memory_every(0.05, lambda: checks.append(None)))
    try:
        for _ in range(100):
            await asyncio.sleep(0.05)
            if before - anon_rss_bytes() > BLOCKS * BLOCK_BYTES // 2:
                break
        assert before - anon_rss_bytes() > BLOCKS * BLOCK_BYTES // 2
        assert checks  # the arena was checked too
    finally:
        loop.cancel()
    with pytest.raises(asyncio.CancelledError):
        await loop


@pytest.mark.parametrize(("seconds", "trims"), [(0.05, True), (0.0, False)])
def test_the_app_trims_only_when_configured(
    freed_arena_pages: None, seconds: float, trims: bool, tmp_path: Path
) -> None:
    # A repository of no models: the lifespan starts and stops quickly, and only the trim loop differs.
    settings = make_settings(tmp_path, memory_release_seconds=seconds, drift_enabled=False)
    with TestClient(create_app(settings)) as client:
        before = anon_rss_bytes()
        threading.Event().wait(0.5)
        assert client.get("/healthz").status_code == 200
        released = before - anon_rss_bytes()
    assert (released > BLOCKS * BLOCK_BYTES // 2) is trims


def test_a_shrink_is_due_only_once_a_model_went_quiet_and_one_run_carries_it() -> None:
    shrink = ArenaShrink()
    assert shrink.claim("ensemble") is None
    assert shrink.check() is False  # the ensemble became active
    for _ in range(3):  # steady traffic: it keeps running, nothing is shrunk
        assert shrink.claim("ensemble") is None
        assert shrink.claim("forecast") is None
        assert shrink.check() is False
    assert shrink.claim("forecast") is None
    assert shrink.check() is True  # the ensemble went quiet; the forecaster still runs
    first, second = shrink.claim("forecast"), shrink.claim("forecast")
    assert first is not None and second is None
    assert first.get_run_config_entry("memory.enable_memory_arena_shrinkage") == "cpu:0"


def test_a_run_of_another_model_returns_what_a_burst_grew_in_the_shared_arena() -> None:
    settings = make_settings(MODELS, ort_intra_op_threads=1)
    burst = build_session(MODELS / "m4-hourly-ensemble" / "2" / "model.onnx", [CPU], settings)
    other = build_session(MODELS / "m4-hourly" / "1" / "model.onnx", [CPU], settings)
    # The last 336 values of 16 real series (the forecasters' context length).
    values = np.asarray([series[-336:] for _, series in read_m4_series(16)], dtype=np.float32)
    shrink = ArenaShrink()
    before = anon_rss_bytes()
    for rows in range(1, 17):  # each batch size once, as a burst of traffic leaves the arena
        burst.run(None, {"values": values[:rows]}, shrink.claim("burst"))
    grown = anon_rss_bytes() - before
    assert grown > 4_000_000
    shrink.check()
    plain = other.run(None, {"values": values[:1]}, shrink.claim("other"))
    assert anon_rss_bytes() - before > grown // 2  # the burst's model is still active: nothing given back
    assert shrink.check() is True
    shrunk = other.run(None, {"values": values[:1]}, shrink.claim("other"))
    assert anon_rss_bytes() - before < grown // 2
    np.testing.assert_array_equal(plain[0], shrunk[0])  # the option changes memory, not answers
