"""An onnxruntime error inside one batch fails exactly that batch's requests with a logged 500.

The fault is injected into the registry's real session: a thin wrapper delegates every ``run`` to it,
except that a batch holding the poison value is passed to the real session with the wrong element type
(float64 instead of float32), so onnxruntime itself raises a genuine ``InvalidArgument``. The batcher,
runner, handler, error mapping and HTTP path are the real ones.

Poisoned series are 200 values long and clean ones 336, so they never share a batch: the micro-batcher
only coalesces rows of equal shape.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from svc_helpers import MODEL_NAME, copy_model, make_settings, read_m4_series

from service.app import create_app

POISON = 4242.25
ERROR_ID = re.compile(r"error id ([0-9a-f]{16})")


class PoisonedSession:
    """Delegates to the real onnxruntime session; a batch containing POISON makes onnxruntime raise."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self.poisoned_batches = 0
        self.clean_batches = 0
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def run(self, output_names: Any, feeds: dict[str, np.ndarray], *args: Any, **kwargs: Any) -> Any:
        if any(bool((array == POISON).any()) for array in feeds.values()):
            with self._lock:
                self.poisoned_batches += 1
            wrong = {name: array.astype(np.float64) for name, array in feeds.items()}
            return self._real.run(output_names, wrong, *args, **kwargs)
        with self._lock:
            self.clean_batches += 1
        return self._real.run(output_names, feeds, *args, **kwargs)


@pytest.fixture(params=[True, False], ids=["batched", "unbatched"])
def faulty(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[TestClient, PoisonedSession]]:
    settings = make_settings(
        copy_model(tmp_path), batching_enabled=request.param, max_queue_delay_seconds=0.02
    )
    with TestClient(create_app(settings)) as client:
        runner = client.app.state.registry.get(MODEL_NAME).runner  # type: ignore[attr-defined]
        session = PoisonedSession(runner._session)
        runner._session = session
        yield client, session


def _clean_body() -> dict[str, Any]:
    return {"series": [{"id": sid, "values": values[-336:]} for sid, values in read_m4_series(3)]}


def _poisoned_body() -> dict[str, Any]:
    values = read_m4_series(1)[0][1][-200:]
    values[-1] = POISON
    return {"series": [{"id": "poisoned", "values": values}]}


def test_onnxruntime_error_fails_only_its_batch_with_a_logged_error_id(
    faulty: tuple[TestClient, PoisonedSession], caplog: pytest.LogCaptureFixture
) -> None:
    client, session = faulty
    clean, poisoned = _clean_body(), _poisoned_body()
    kinds = ["poisoned", "clean"] * 6
    barrier = threading.Barrier(len(kinds))
    results: list[tuple[str, int, dict[str, Any]]] = []
    lock = threading.Lock()

    def call(kind: str) -> None:
        barrier.wait(timeout=30)
        response = client.post("/v1/forecast", json=poisoned if kind == "poisoned" else clean)
        with lock:
            results.append((kind, response.status_code, response.json()))

    with caplog.at_level(logging.ERROR, logger="service.http.errors"):
        threads = [threading.Thread(target=call, args=(kind,)) for kind in kinds]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    assert len(results) == len(kinds)
    assert session.poisoned_batches >= 1 and session.clean_batches >= 1

    logged = {
        match.group(1): record
        for record in caplog.records
        if record.name == "service.http.errors"
        and (match := re.search(r"id=([0-9a-f]{16})", record.getMessage()))
    }
    ids = set()
    for kind, status, body in results:
        if kind == "clean":
            assert status == 200, body
            assert body["model"] == {"name": MODEL_NAME, "version": 1}
            assert len(body["forecasts"]) == 3
            continue
        assert status == 500, body
        assert body["error"]["type"] == "internal_error"
        match = ERROR_ID.search(body["error"]["message"])
        assert match, body
        error_id = match.group(1)
        ids.add(error_id)
        record = logged.get(error_id)
        assert record is not None, f"error id {error_id} not in the log: {list(logged)}"
        # Logged with the traceback of the domain error, caused by onnxruntime's own exception.
        assert record.exc_info is not None
        exc = record.exc_info[1]
        assert type(exc).__name__ == "InferenceError"
        assert type(exc.__cause__).__module__.startswith("onnxruntime"), repr(exc.__cause__)
        assert "onnxruntime failed" in str(exc)
    assert len(ids) == kinds.count("poisoned"), "every failed request gets its own error id"

    # The service keeps serving: the next clean request, and a lone one after another fault.
    assert client.post("/v1/forecast", json=clean).status_code == 200
    assert client.post("/v1/forecast", json=poisoned).status_code == 500
    after = client.post("/v1/forecast", json=clean)
    assert after.status_code == 200, after.text
    assert client.get("/readyz").status_code == 200
