"""The periodic memory release (SEQSERVE_MEMORY_RELEASE_SECONDS).

glibc: pages a thread freed in its own malloc arena go back to the kernel, by a direct call and by the
worker's background loop, and the app runs the loop only when asked to. The fragmentation is built the
way a batch thread builds it: many blocks below the mmap threshold, allocated on one thread, all freed
except the last, which keeps glibc from shrinking the arena's top by itself.

ORT: the shared CPU arena keeps what a burst on one model grew, until a run carries the shrink option;
with the shared arena, a run of another model frees it. Real models, real sessions.
"""

import asyncio
import json
import platform
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from svc_helpers import MODELS, make_settings, read_m4_series

import service.app
from service.app import create_app
from service.runtime.memory import release_memory_every, trim_heap
from service.runtime.session import ArenaShrink

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
        # Another app in this test process (the session's TestClient) runs the same loop and may trim
        # first, so the pages alone do not show that this loop ran: wait for its second arena check too,
        # which comes after its first trim.
        for _ in range(100):
            await asyncio.sleep(0.05)
            if len(checks) >= 2 and before - anon_rss_bytes() > BLOCKS * BLOCK_BYTES // 2:
                break
        assert before - anon_rss_bytes() > BLOCKS * BLOCK_BYTES // 2
        assert len(checks) >= 2  # the arena was checked, trimmed after, and checked again
    finally:
        loop.cancel()
    with pytest.raises(asyncio.CancelledError):
        await loop


@pytest.mark.parametrize("seconds", [0.05, 0.0])
def test_the_app_releases_memory_only_when_configured(
    freed_arena_pages: None, seconds: float, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[float] = []

    async def recorded(interval_seconds: float, check_arena: Callable[[], object]) -> None:
        started.append(interval_seconds)
        await release_memory_every(interval_seconds, check_arena)

    monkeypatch.setattr(service.app, "release_memory_every", recorded)
    # A repository of no models: the lifespan starts and stops quickly, and only the release loop differs.
    settings = make_settings(tmp_path, memory_release_seconds=seconds, drift_enabled=False)
    with TestClient(create_app(settings)) as client:
        before = anon_rss_bytes()
        threading.Event().wait(0.5)
        assert client.get("/healthz").status_code == 200
        released = before - anon_rss_bytes()
    assert started == ([seconds] if seconds else [])
    if seconds:  # the loop really trims; with 0 no loop runs (other code may still trim: not asserted)
        assert released > BLOCKS * BLOCK_BYTES // 2


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
    # The ensemble comes back after a pause, then goes quiet again: a second shrink.
    assert shrink.claim("ensemble") is None
    assert shrink.check() is False
    assert shrink.claim("forecast") is None
    assert shrink.check() is True
    assert shrink.claim("forecast") is not None


# Run in a fresh process, as in a worker: in the test process, earlier tests' sessions may have left
# arena regions that hold a live allocation, and the burst could grow into one of those, which no shrink
# can free. The registry pins glibc's mmap threshold before any model loads, so arena regions are mapped
# on their own and a freed one leaves RSS at once; the script does the same.
BURST_THEN_QUIET = """
import json, sys
from pathlib import Path
import numpy as np
from service.config import Settings
from service.runtime.memory import pin_mmap_threshold
from service.runtime.providers import CPU
from service.runtime.session import ArenaShrink, build_session

def anon():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024

models = Path(sys.argv[1])
values = np.asarray(json.loads(sys.argv[2]), dtype=np.float32)
assert pin_mmap_threshold()
settings = Settings(model_repository=models, ort_intra_op_threads=1)
burst = build_session(models / "m4-hourly-ensemble" / "2" / "model.onnx", [CPU], settings)
other = build_session(models / "m4-hourly" / "1" / "model.onnx", [CPU], settings)
shrink = ArenaShrink()
out = {"before": anon()}
for rows in range(1, 17):  # each batch size once, as a burst of traffic leaves the arena
    burst.run(None, {"values": values[:rows]}, shrink.claim("burst"))
out["after_burst"] = anon()
out["check_while_active"] = shrink.check()
plain = other.run(None, {"values": values[:1]}, shrink.claim("other"))
out["after_plain_run"] = anon()
out["check_once_quiet"] = shrink.check()
shrunk = other.run(None, {"values": values[:1]}, shrink.claim("other"))
out["after_shrink_run"] = anon()
out["same_answer"] = bool(np.array_equal(plain[0], shrunk[0]))
print(json.dumps(out))
"""


def test_a_run_of_another_model_returns_what_a_burst_grew_in_the_shared_arena() -> None:
    # The last 336 values of 16 real series (the forecasters' context length).
    values = [series[-336:] for _, series in read_m4_series(16)]
    done = subprocess.run(
        [sys.executable, "-c", BURST_THEN_QUIET, str(MODELS), json.dumps(values)],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    out = json.loads(done.stdout)
    grown = out["after_burst"] - out["before"]
    assert grown > 4_000_000
    assert out["check_while_active"] is False
    assert out["after_plain_run"] - out["before"] > grown // 2  # a plain run gives nothing back
    assert out["check_once_quiet"] is True
    assert out["after_shrink_run"] - out["before"] < grown // 2
    assert out["same_answer"]  # the option changes memory, not answers


@pytest.mark.parametrize("arena", [True, False])
def test_forecasts_keep_answering_while_models_go_quiet(arena: bool) -> None:
    # Without an arena ORT refuses the shrink option (INVALID_ARGUMENT), so no run may carry it then.
    settings = make_settings(MODELS, ort_cpu_mem_arena=arena, memory_release_seconds=0.05)
    series = [{"values": values[-336:]} for _, values in read_m4_series(2)]
    with TestClient(create_app(settings)) as client:
        for model in ("m4-hourly-ensemble", "m4-hourly", "m4-hourly-ensemble", "m4-hourly"):
            answer = client.post("/v1/forecast", json={"model": model, "series": series})
            assert answer.status_code == 200, answer.text
            assert answer.json()["model"]["name"] == model
            threading.Event().wait(0.2)  # several periods: the other model went quiet meanwhile
