"""Hot reload with two uvicorn workers: the reload reaches both before the response, nothing fails.

``python -m service`` runs with ``SEQSERVE_WORKERS=2`` on a temporary copy of ``m4-hourly`` v1, and
``SEQSERVE_RELOAD_DIR`` pointed at a temporary directory so the test can see each worker's ack. Client
threads post forecasts on a fresh connection per request, so the kernel spreads them over both workers.
Version 2 is dropped in and reloaded: the response must say both workers confirmed, and every request
sent after it arrived (at least 100) must be answered by version 2. No request may fail.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from test_hot_reload import MODEL, REPO, SOURCE, Answer, _add_version, _free_port, _series

THREADS = 4
LATE_REQUESTS = 100


@pytest.fixture
def two_workers(tmp_path: Path) -> Iterator[tuple[str, Path, Path]]:
    repo = tmp_path / "models"
    (repo / MODEL).mkdir(parents=True)
    shutil.copytree(SOURCE, repo / MODEL / "1")
    reload_dir = tmp_path / "reload"
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "SEQSERVE_HOST": "127.0.0.1",
        "SEQSERVE_PORT": str(port),
        "SEQSERVE_WORKERS": "2",
        "SEQSERVE_PROVIDERS": "cpu",
        "SEQSERVE_MODEL_REPOSITORY": str(repo),
        "SEQSERVE_RELOAD_DIR": str(reload_dir),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
        # Speed is not under test: a slow CI machine must not turn queued requests into 504s.
        "SEQSERVE_REQUEST_TIMEOUT_SECONDS": "300",
    }
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "service"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + 90
            # Both workers must have finished start-up (each logs this once) before the test begins.
            while log_path.read_text().count("Application startup complete.") < 2:
                assert proc.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, "the workers did not start"
                time.sleep(0.2)
            assert httpx.get(f"{base}/readyz", timeout=10).status_code == 200
            yield base, repo, reload_dir
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    assert "Traceback" not in log_path.read_text(), log_path.read_text()


def test_reload_reaches_every_worker(two_workers: tuple[str, Path, Path]) -> None:
    base, repo, reload_dir = two_workers
    body = {"series": _series(4)}
    stop = threading.Event()
    answers: list[list[Answer]] = [[] for _ in range(THREADS)]

    def load(mine: list[Answer]) -> None:
        # No keep-alive: every request opens a new connection, which either worker may accept.
        limits = httpx.Limits(max_keepalive_connections=0)
        with httpx.Client(base_url=base, timeout=120, limits=limits) as http:
            while not stop.is_set():
                sent = time.monotonic()
                try:
                    response = http.post("/v1/forecast", json=body)
                except httpx.TransportError as exc:
                    mine.append(Answer(sent, time.monotonic(), None, None, repr(exc)))
                    continue
                version = response.json()["model"]["version"] if response.status_code == 200 else None
                mine.append(
                    Answer(sent, time.monotonic(), response.status_code, version, response.text[:300])
                )

    def wait_for_answers(after: float, total: int) -> None:
        deadline = time.monotonic() + 180
        while sum(a.sent > after for mine in answers for a in mine) < total:
            assert time.monotonic() < deadline, "load stalled"
            assert all(t.is_alive() for t in threads), "a load thread died"
            time.sleep(0.05)

    threads = [threading.Thread(target=load, args=(mine,), daemon=True) for mine in answers]
    for thread in threads:
        thread.start()
    try:
        wait_for_answers(0.0, 20)
        _add_version(repo, 2)
        with httpx.Client(base_url=base, timeout=120) as admin:
            response = admin.post(f"/v1/models/{MODEL}/reload")
        reloaded_at = time.monotonic()
        assert response.status_code == 200, response.text
        result = response.json()
        assert result["model"]["version"] == 2
        assert result["change"]["previous_version"] == 1 and result["change"]["changed"] is True
        assert result["workers"] == {"expected": 2, "confirmed": 2}, result["workers"]
        wait_for_answers(reloaded_at, LATE_REQUESTS)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=120)

    # Two distinct worker processes acknowledged version 2 through the shared directory.
    acks = sorted(reload_dir.glob(f"{MODEL}.*.ack"))
    assert len(acks) == 2, acks
    assert all(json.loads(ack.read_text())["version"] == 2 for ack in acks), [a.read_text() for a in acks]
    everything = [a for mine in answers for a in mine]
    failed = [a for a in everything if a.status != 200]
    assert not failed, failed[:5]
    assert all(a.version in (1, 2) for a in everything)
    assert any(a.version == 1 for a in everything)
    late = [a for a in everything if a.sent > reloaded_at]
    assert len(late) >= LATE_REQUESTS
    assert all(a.version == 2 for a in late), [a.version for a in late]
