"""POST /v1/models/{name}/reload in process: in-flight requests finish on the old version, admin-only.

The load-level proof (concurrent clients, broken versions) is tests/integration/test_hot_reload.py.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from svc_helpers import MODEL_NAME, assert_error, copy_model, make_settings, read_m4_series

from service.app import create_app
from service.exceptions import ModelNotFoundError

BODY = {"series": [{"id": "a", "values": read_m4_series(1)[0][1][-336:]}]}


class HeldSession:
    """Delegates to the real session, but holds every run until released (a slow in-flight batch)."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self.entered = threading.Event()
        self.release = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def run(self, output_names: Any, feeds: dict[str, np.ndarray], *args: Any, **kwargs: Any) -> Any:
        self.entered.set()
        assert self.release.wait(60)
        return self._real.run(output_names, feeds, *args, **kwargs)


def _add_v2(repo: Path) -> None:
    copy_model(repo.parent, version="2")
    manifest = json.loads((repo / MODEL_NAME / "2" / "model.json").read_text())
    assert manifest["version"] == 2


def test_in_flight_request_finishes_on_the_old_version_after_the_swap(tmp_path: Path) -> None:
    repo = copy_model(tmp_path)
    with TestClient(create_app(make_settings(repo))) as client:
        old_runner = client.app.state.registry.get(MODEL_NAME).runner  # type: ignore[attr-defined]
        held = HeldSession(old_runner._session)
        old_runner._session = held
        slow: list[httpx.Response] = []
        thread = threading.Thread(target=lambda: slow.append(client.post("/v1/forecast", json=BODY)))
        thread.start()
        try:
            assert held.entered.wait(30), "the request never reached the session"
            _add_v2(repo)
            # The reload does not wait for the held request: it swaps while v1 is mid-batch.
            reloaded = client.post(f"/v1/models/{MODEL_NAME}/reload")
            assert reloaded.status_code == 200, reloaded.text
            assert reloaded.json()["model"]["version"] == 2
            assert reloaded.json()["change"]["previous_version"] == 1
            fresh = client.post("/v1/forecast", json=BODY)
            assert fresh.status_code == 200 and fresh.json()["model"]["version"] == 2
            assert not slow, "the in-flight request must still be running"
            assert old_runner._batcher is not None and old_runner._batcher._task is not None
            assert not old_runner._batcher._task.done(), "old batcher closed under an in-flight request"
        finally:
            held.release.set()
            thread.join(60)
        assert slow[0].status_code == 200, slow[0].text
        assert slow[0].json()["model"]["version"] == 1
        # Its batcher closed once that last request was answered.
        assert old_runner._batcher._task.cancelling() or old_runner._batcher._task.done()
        # A request that resolved the old record just before the swap still gets an answer from it.
        feeds = {"values": np.asarray([BODY["series"][0]["values"]], dtype=np.float32)}
        out = client.portal.call(old_runner.run, feeds)  # type: ignore[union-attr]
        assert out["quantiles"].shape == (1, 48, 7)


def test_reload_of_unknown_or_unsafe_names_is_404(tmp_path: Path) -> None:
    with TestClient(create_app(make_settings(copy_model(tmp_path)))) as client:
        for name in ["nope", ".hidden"]:
            assert_error(client.post(f"/v1/models/{name}/reload"), 404, error_type="model_not_found")
        # HTTP clients normalise "..", so ask the registry directly: no path may leave the repository.
        registry = client.app.state.registry  # type: ignore[attr-defined]
        for name in ["..", ".", "a/../..", "x\0"]:
            with pytest.raises(ModelNotFoundError):
                client.portal.call(registry.reload, name)  # type: ignore[union-attr]
        assert [m["name"] for m in client.get("/v1/models").json()["models"]] == [MODEL_NAME]


def test_reload_needs_an_api_key_when_keys_are_set(tmp_path: Path) -> None:
    settings = make_settings(copy_model(tmp_path), api_keys=["k-1"])
    with TestClient(create_app(settings)) as client:
        assert_error(client.post(f"/v1/models/{MODEL_NAME}/reload"), 401)
        ok = client.post(f"/v1/models/{MODEL_NAME}/reload", headers={"X-API-Key": "k-1"})
        assert ok.status_code == 200 and ok.json()["change"]["changed"] is False


def test_a_model_that_failed_at_start_up_can_be_fixed_by_a_reload(tmp_path: Path) -> None:
    repo = copy_model(tmp_path)
    onnx = repo / MODEL_NAME / "1" / "model.onnx"
    good = onnx.read_bytes()
    onnx.write_bytes(good[:100])
    with TestClient(create_app(make_settings(repo))) as client:
        assert client.get("/readyz").status_code == 503
        refused = client.post(f"/v1/models/{MODEL_NAME}/reload")
        assert_error(refused, 409, error_type="reload_refused")
        info = client.get(f"/v1/models/{MODEL_NAME}").json()
        assert info["state"] == "failed" and "size mismatch" in info["last_reload_error"]
        onnx.write_bytes(good)
        fixed = client.post(f"/v1/models/{MODEL_NAME}/reload")
        assert fixed.status_code == 200, fixed.text
        assert fixed.json()["change"]["previous_version"] is None
        assert client.get("/readyz").status_code == 200
        assert client.post("/v1/forecast", json=BODY).json()["model"]["version"] == 1
