"""Several uvicorn workers: /metrics in any worker reports the sum over all of them.

Runs the real app under ``uvicorn --workers 2`` with PROMETHEUS_MULTIPROC_DIR set, on an empty model
repository so that start-up is quick (the metrics path does not depend on models).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from svc_helpers import REPO

from service.metrics_exposition import prepare_multiprocess

WORKERS = 2
REQUESTS = 12


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_workers_share_one_view_and_clean_exit_drops_live_gauges(tmp_path: Path) -> None:
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    (tmp_path / "models").mkdir()
    port = _free_port()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
           "SEQSERVE_MODEL_REPOSITORY": str(tmp_path / "models")}  # fmt: skip
    server = ["service.app:create_app", "--factory", "--workers", str(WORKERS)]
    where = ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    command = [sys.executable, "-m", "uvicorn", *server, *where]
    proc = subprocess.Popen(command, cwd=REPO, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for_workers(url, metrics_dir, proc)
        _check_aggregation(url)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    # Workers ran their lifespan shutdown: live gauges are gone, counters stay for the record.
    assert not list(metrics_dir.glob("gauge_live*.db"))
    assert list(metrics_dir.glob("counter_*.db"))


def _wait_for_workers(url: str, metrics_dir: Path, proc: subprocess.Popen[bytes]) -> None:
    # Each worker writes its build_info file when its lifespan has started.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, "uvicorn exited during start-up"
        if len(list(metrics_dir.glob("gauge_livemax_*.db"))) >= WORKERS:
            # Only a TCP connect: an HTTP probe would itself be counted.
            host, port = url.removeprefix("http://").split(":")
            with contextlib.suppress(OSError), socket.create_connection((host, int(port)), timeout=2):
                return
        time.sleep(0.2)
    raise AssertionError("workers did not start within 60 s")


def _samples(url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    # A new connection per scrape, so scrapes are spread over the workers.
    text = httpx.get(f"{url}/metrics", headers={"connection": "close"}, timeout=5).text
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((sample.labels, sample.value))
    return out


def _check_aggregation(url: str) -> None:
    for _ in range(REQUESTS):
        assert httpx.get(f"{url}/healthz", headers={"connection": "close"}, timeout=5).status_code == 200
    for _ in range(2 * WORKERS):
        samples = _samples(url)
        ok = {"route": "/healthz", "status": "200"}
        assert [v for labels, v in samples["seqserve_requests_total"] if labels == ok] == [REQUESTS]
        # livemax: one series, not one per worker.
        assert [v for _, v in samples["seqserve_build_info"]] == [1.0]
        # The scrape itself is the only request in flight, whichever worker serves it (livesum).
        in_flight = samples["seqserve_requests_in_progress"]
        assert [v for labels, v in in_flight if labels["route"] == "/metrics"] == [1.0]
        pids = {labels["pid"] for labels, _ in samples["process_resident_memory_bytes"]}
        assert len(pids) == WORKERS


def test_prepare_multiprocess(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    assert prepare_multiprocess(1) is None
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ
    stale = tmp_path / "counter_123.db"
    stale.write_bytes(b"old run")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    assert prepare_multiprocess(1) == tmp_path
    assert not stale.exists(), "a previous run's samples must not be added to this run's"
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR")
    created = prepare_multiprocess(4)
    assert created is not None and created.is_dir()
    assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == str(created)
    created.rmdir()
