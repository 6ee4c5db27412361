"""What keeps a worker's peak RSS down (docs/memory.md): one ORT arena for all sessions, largest model first,
glibc's mmap threshold pinned. Memory itself is measured in benchmarks, never asserted here (it is noisy);
these tests fail if a setting is dropped or if it changes an answer."""

import asyncio
import gc
import platform
import re
import shutil
import time
import weakref
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from svc_helpers import MODELS, make_settings, read_m4_series

from service.runtime.memory import pin_mmap_threshold
from service.runtime.providers import CPU
from service.runtime.registry import ModelRegistry
from service.runtime.session import SHARED_ARENA_ENTRY, build_session, session_options


def test_sessions_share_one_cpu_arena_by_default() -> None:
    assert session_options(make_settings()).get_session_config_entry(SHARED_ARENA_ENTRY) == "1"


@pytest.mark.parametrize("overrides", [{"ort_shared_cpu_arena": False}, {"ort_cpu_mem_arena": False}])
def test_no_shared_arena_when_turned_off_or_without_an_arena(overrides: dict[str, Any]) -> None:
    options = session_options(make_settings(**overrides))
    with pytest.raises(RuntimeError, match=SHARED_ARENA_ENTRY):
        options.get_session_config_entry(SHARED_ARENA_ENTRY)
    assert options.enable_cpu_mem_arena is overrides.get("ort_cpu_mem_arena", True)


def _feeds(name: str, rows: int) -> dict[str, np.ndarray[Any, Any]]:
    if name.startswith("m4-hourly"):
        values = [v[-336:] for _, v in read_m4_series(rows * 3) if len(v) >= 336][:rows]
        return {"values": np.asarray(values, dtype=np.float32)}
    rng = np.random.default_rng(rows)
    if name.startswith("sst2"):
        lengths = rng.integers(3, 30, size=rows)
        ids = rng.integers(1, 11_000, size=(rows, int(lengths.max())))
        return {"input_ids": ids, "lengths": lengths}
    return {"sequences": rng.random((rows, 28, 28), dtype=np.float32)}


@pytest.mark.parametrize("model", ["m4-hourly/1", "m4-hourly-ensemble/1", "sst2-distilled/1", "mnist-rows/1"])
def test_shared_arena_gives_bitwise_the_same_answers(model: str) -> None:
    path = MODELS / model / "model.onnx"
    own = build_session(path, [CPU], make_settings(ort_shared_cpu_arena=False))
    shared = build_session(path, [CPU], make_settings())
    for rows in (1, 64):
        feeds = _feeds(model, rows)
        # Interleaved, so each session runs after the other one has grown the shared arena.
        for _ in range(2):
            for a, b in zip(own.run(None, feeds), shared.run(None, feeds), strict=True):
                assert a.shape[0] == rows
                assert np.array_equal(a, b)


def test_models_load_largest_first_and_are_listed_by_name(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Three small committed models whose graph sizes differ, in a repository of their own.
    chosen = ["lstm-next-step", "m4-hourly", "mnist-rows"]
    for name in chosen:
        shutil.copytree(MODELS / name / "1", tmp_path / name / "1")
    sizes = {name: (tmp_path / name / "1" / "model.onnx").stat().st_size for name in chosen}
    assert len(set(sizes.values())) == len(chosen)
    with caplog.at_level("INFO", logger="service.runtime.registry"):
        registry = ModelRegistry(make_settings(tmp_path), [CPU])
        registry.load()
    loaded = re.findall(r"model loaded: name=(\S+) ", caplog.text)
    assert loaded == sorted(chosen, key=lambda name: -sizes[name])
    assert loaded != sorted(chosen)
    assert list(registry.snapshot().models) == sorted(chosen)


def test_mmap_threshold_is_pinned_unless_the_operator_set_glibcs_knob(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    assert pin_mmap_threshold() is (platform.libc_ver()[0] == "glibc")
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.mmap_threshold=262144")
    assert pin_mmap_threshold() is False
    monkeypatch.delenv("GLIBC_TUNABLES")
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "262144")
    assert pin_mmap_threshold() is False


@pytest.mark.anyio
async def test_an_unloaded_runner_held_in_a_cycle_is_freed_once_the_holder_lets_go(tmp_path: Path) -> None:
    # Start-up freezes the collector (service.app.settle_garbage_collector). A request that resolved the
    # model just before the unload can still hold its runner inside a reference cycle (an exception and
    # its traceback's frames make one). Freezing again while it does would pin the session for good.
    shutil.copytree(MODELS / "m4-hourly" / "1", tmp_path / "m4-hourly" / "1")
    registry = ModelRegistry(make_settings(tmp_path), [CPU])
    registry.load()
    runner = registry.get("m4-hourly").runner
    gone = weakref.ref(runner)
    straggler: list[Any] = [runner]
    straggler.append(straggler)
    del runner
    gc.freeze()
    try:
        assert await registry.unload("m4-hourly", drain_timeout_seconds=1.0) == [1]
        await asyncio.sleep(0.3)
        assert gone() is not None  # the straggler still holds it
        del straggler
        deadline = time.monotonic() + 10.0
        # The collection runs in a worker thread; it freezes again right after the runner goes.
        while (gone() is not None or not gc.get_freeze_count()) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert gone() is None
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
