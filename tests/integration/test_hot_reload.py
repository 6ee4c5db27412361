"""Hot reload under load: a new version is dropped in and swapped in with nothing lost; bad ones are refused.

``python -m service`` runs in a subprocess on a temporary repository holding a copy of the real
``m4-hourly`` v1. Client threads post real M4 forecasts the whole time. Version 2 (a copy of v1 whose
manifest says version 2; the manifest is not in its own ``files`` list, so the checksums stay valid) is
dropped in and reloaded. Every request must succeed and name the version that answered it; per client
thread the versions go 1s then 2s; every request sent after the reload response arrived gets version 2.

Then broken version 3s (a flipped byte, a truncated model.onnx with stale and with matching checksums,
a wrong tensor spec) are each refused with a 409 while v2 keeps serving and ``/v1/models`` shows why.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
MODEL = "m4-hourly"
SOURCE = REPO / "models" / MODEL / "1"
TRAIN_CSV = REPO / "training" / "data" / "m4" / "Hourly-train.csv"
THREADS = 6


@dataclass
class Answer:
    sent: float
    received: float
    status: int | None
    version: int | None
    error: str | None = None


def _series(limit: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    with TRAIN_CSV.open(newline="") as handle:
        reader = csv.reader(handle)
        next(reader)
        for row in reader:
            out.append({"id": row[0], "values": [float(x) for x in row[1:] if x.strip()]})
            if len(out) == limit:
                return out
    return out


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _add_version(
    repo: Path, version: int, edit: Callable[[Path, dict[str, Any]], None] | None = None
) -> Path:
    """Copy v1 to <version>; the manifest names the new version; `edit` may break the copy."""
    target = repo / MODEL / str(version)
    staging = repo / f".staging-{version}"  # hidden from discovery until complete
    shutil.copytree(SOURCE, staging)
    manifest = json.loads((staging / "model.json").read_text())
    manifest["version"] = version
    if edit is not None:
        edit(staging, manifest)
    (staging / "model.json").write_text(json.dumps(manifest))
    staging.rename(target)
    return target


def _flip_byte(folder: Path, manifest: dict[str, Any]) -> None:
    data = bytearray((folder / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / "model.onnx").write_bytes(bytes(data))


def _truncate(folder: Path, manifest: dict[str, Any]) -> None:
    data = (folder / "model.onnx").read_bytes()
    (folder / "model.onnx").write_bytes(data[: len(data) // 3])


def _truncate_and_rehash(folder: Path, manifest: dict[str, Any]) -> None:
    # Checksums that match the truncated file: only onnxruntime's own parse can catch this one.
    _truncate(folder, manifest)
    data = (folder / "model.onnx").read_bytes()
    manifest["files"]["model.onnx"] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


def _wrong_spec(folder: Path, manifest: dict[str, Any]) -> None:
    manifest["inputs"][0]["datatype"] = "FP64"


def _opt_out(folder: Path, manifest: dict[str, Any]) -> None:
    manifest["default"] = False


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    repo = tmp_path / "models"
    (repo / MODEL).mkdir(parents=True)
    shutil.copytree(SOURCE, repo / MODEL / "1")
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "SEQSERVE_HOST": "127.0.0.1",
        "SEQSERVE_PORT": str(port),
        "SEQSERVE_WORKERS": "1",
        "SEQSERVE_PROVIDERS": "cpu",
        "SEQSERVE_MODEL_REPOSITORY": str(repo),
        # Speed is not under test: a slow CI machine must not turn queued requests into 504s.
        "SEQSERVE_REQUEST_TIMEOUT_SECONDS": "300",
    }
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "service"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                assert proc.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, "the service did not become ready"
                try:
                    if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.2)
            yield base, repo
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    assert "Traceback" not in log_path.read_text(), log_path.read_text()


def _model_info(http: httpx.Client) -> dict[str, Any]:
    models = {m["name"]: m for m in http.get("/v1/models").json()["models"]}
    return dict(models[MODEL])


def test_reload_under_load_loses_nothing_and_refuses_broken_versions(server: tuple[str, Path]) -> None:
    base, repo = server
    body = {"series": _series(8)}
    stop = threading.Event()
    answers: list[list[Answer]] = [[] for _ in range(THREADS)]
    forecasts: dict[int, Any] = {}

    def load(mine: list[Answer]) -> None:
        with httpx.Client(base_url=base, timeout=120) as http:
            while not stop.is_set():
                sent = time.monotonic()
                try:
                    response = http.post("/v1/forecast", json=body)
                except httpx.TransportError as exc:
                    mine.append(Answer(sent, time.monotonic(), None, None, repr(exc)))
                    continue
                received = time.monotonic()
                version = None
                if response.status_code == 200:
                    payload = response.json()
                    assert payload["model"]["name"] == MODEL
                    version = payload["model"]["version"]
                    forecasts.setdefault(version, payload["forecasts"])
                mine.append(Answer(sent, received, response.status_code, version, response.text[:300]))

    def wait_for_answers(after: float, each: int) -> None:
        deadline = time.monotonic() + 120
        while not all(sum(a.sent > after for a in mine) >= each for mine in answers):
            assert time.monotonic() < deadline, "load stalled"
            assert all(t.is_alive() for t in threads), "a load thread died"
            time.sleep(0.05)

    threads = [threading.Thread(target=load, args=(mine,), daemon=True) for mine in answers]
    for thread in threads:
        thread.start()
    admin = httpx.Client(base_url=base, timeout=120)
    try:
        wait_for_answers(0.0, 3)

        _add_version(repo, 2)
        response = admin.post(f"/v1/models/{MODEL}/reload")
        reloaded_at = time.monotonic()
        assert response.status_code == 200, response.text
        result = response.json()
        assert result["model"]["name"] == MODEL
        assert result["model"]["version"] == 2
        assert result["model"]["state"] == "ready"
        assert result["model"]["last_reload_error"] is None
        assert result["change"]["previous_version"] == 1
        assert result["change"]["version"] == 2
        assert result["change"]["changed"] is True
        wait_for_answers(reloaded_at, 3)

        # Broken version 3s, each refused while version 2 keeps serving under the same load.
        cases: list[tuple[Callable[[Path, dict[str, Any]], None], str]] = [
            (_flip_byte, "sha256 mismatch"),
            (_truncate, "size mismatch"),
            (_truncate_and_rehash, "INVALID_PROTOBUF"),
            (_wrong_spec, "graph does not match manifest"),
        ]
        for edit, reason in cases:
            broken = _add_version(repo, 3, edit)
            refused = admin.post(f"/v1/models/{MODEL}/reload")
            assert refused.status_code == 409, (edit.__name__, refused.text)
            error = refused.json()["error"]
            assert error["type"] == "reload_refused"
            assert "version 3" in error["message"] and reason in error["message"], error
            assert "version 2 keeps serving" in error["message"], error
            assert error["details"] and error["details"][0]["loc"] == ["repository", MODEL, "3"]
            info = _model_info(admin)
            assert info["state"] == "ready" and info["version"] == 2 and info["error"] is None
            assert reason in info["last_reload_error"] and "version 3" in info["last_reload_error"]
            assert admin.get(f"/v1/models/{MODEL}").json()["last_reload_error"] == info["last_reload_error"]
            assert admin.get("/readyz").status_code == 200
            served = admin.post("/v1/forecast", json=body)
            assert served.status_code == 200 and served.json()["model"]["version"] == 2
            shutil.rmtree(broken)

        # A version opted out of default serving is skipped, as at start-up; the good reload clears
        # the recorded failure.
        _add_version(repo, 3, _opt_out)
        again = admin.post(f"/v1/models/{MODEL}/reload")
        assert again.status_code == 200, again.text
        assert again.json()["model"]["version"] == 2
        assert again.json()["change"]["changed"] is False
        assert _model_info(admin)["last_reload_error"] is None
        wait_for_answers(time.monotonic(), 2)

        unknown = admin.post("/v1/models/no-such-model/reload")
        assert unknown.status_code == 404, unknown.text
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=120)
        admin.close()

    everything = [a for mine in answers for a in mine]
    failed = [a for a in everything if a.status != 200]
    assert not failed, failed[:5]
    assert all(a.version in (1, 2) for a in everything)
    for mine in answers:
        versions = [a.version for a in mine]
        assert versions == sorted(versions), f"versions went backwards in one client: {versions}"
        assert versions[0] == 1 and versions[-1] == 2
    late = [a for a in everything if a.sent > reloaded_at]
    assert late and all(a.version == 2 for a in late)
    # v2 is a byte-identical copy of v1: the swap changed which version answered, not the answers.
    assert forecasts[1] == forecasts[2]
