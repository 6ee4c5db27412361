import numpy as np
import pytest
from svc_helpers import MODEL_DIR

from service.config import Settings
from service.runtime.inference import ModelRunner
from service.runtime.manifest import load_manifest
from service.runtime.providers import CPU
from service.runtime.session import build_session


def _runner(max_batch_size: int) -> ModelRunner:
    manifest = load_manifest(MODEL_DIR)
    session = build_session(MODEL_DIR / "model.onnx", [CPU], Settings())
    return ModelRunner(session, manifest.outputs, max_batch_size, "test")


def _rows(n: int, length: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(length)
    return (50 + 10 * np.sin(2 * np.pi * t / 24) + rng.normal(0, 1, (n, length))).astype(np.float32)


@pytest.mark.anyio
async def test_chunking_gives_the_same_answer() -> None:
    rows = _rows(7, 200)
    whole = (await _runner(256).run({"values": rows}))["quantiles"]
    chunked = (await _runner(3).run({"values": rows}))["quantiles"]
    assert chunked.shape == whole.shape == (7, 48, 7)
    np.testing.assert_allclose(chunked, whole, rtol=1e-5, atol=1e-5)


def test_run_sync_matches_and_rejects_empty() -> None:
    runner = _runner(2)
    out = runner.run_sync({"values": _rows(5, 168)})["quantiles"]
    assert out.shape == (5, 48, 7)
    with pytest.raises(ValueError, match="non-zero number of rows"):
        runner.run_sync({"values": np.zeros((0, 168), dtype=np.float32)})


class CountingSession:
    """A real ORT session that counts its calls and the rows in each."""

    def __init__(self, session: object) -> None:
        self._session = session
        self.rows_per_call: list[int] = []

    def run(
        self, names: list[str], feeds: dict[str, np.ndarray], run_options: object = None
    ) -> list[np.ndarray]:
        self.rows_per_call.append(next(iter(feeds.values())).shape[0])
        return self._session.run(names, feeds, run_options)  # type: ignore[attr-defined, no-any-return]


def test_rows_per_run_splits_a_batch_into_smaller_session_calls_without_changing_answers() -> None:
    manifest = load_manifest(MODEL_DIR)
    session = build_session(MODEL_DIR / "model.onnx", [CPU], Settings())
    counting = CountingSession(session)
    split = ModelRunner(counting, manifest.outputs, 64, "test", rows_per_run=4)
    rows = _rows(10, 336)
    out = split.run_sync({"values": rows})["quantiles"]
    assert counting.rows_per_call == [4, 4, 2]
    whole = ModelRunner(session, manifest.outputs, 64, "test").run_sync({"values": rows})["quantiles"]
    assert out.shape == whole.shape == (10, 48, 7)
    np.testing.assert_allclose(out, whole, rtol=1e-5, atol=1e-5)
    counting.rows_per_call.clear()
    split.run_sync({"values": rows[:3]})
    assert counting.rows_per_call == [3]
