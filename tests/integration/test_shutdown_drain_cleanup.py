"""Shutdown of a real ``python -m service``: the drain period, and nothing left behind after a clean stop.

Drain (``SEQSERVE_DRAIN_SECONDS``): after SIGTERM the replica answers /readyz (and /v2/health/ready) with
503, so a health-checking load balancer takes it out of rotation, while it keeps serving requests on new
and existing connections; then it shuts down and exits 0.

Cleanup: with two workers the launcher creates a prometheus multiprocess directory and a reload
directory in the temporary directory; after a clean stop nothing the service created may remain there
(a host that restarts replicas for weeks would collect them).
"""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
from replica_tools import forecast_body, forecast_only_repository, start_replica

# Long enough for every check below to run inside it on a slow, shared machine.
DRAIN_SECONDS = 6
# onnxruntime itself writes this one fixed-name file into TMPDIR when it is imported (a session id for
# its telemetry); the name never changes, so restarts overwrite it instead of piling up.
ONNXRUNTIME_FILE = ".ses"


def test_sigterm_fails_readiness_first_and_keeps_serving_through_the_drain(tmp_path: Path) -> None:
    replica = start_replica(
        tmp_path, forecast_only_repository(tmp_path), extra_env={"SEQSERVE_DRAIN_SECONDS": str(DRAIN_SECONDS)}
    )
    body = forecast_body(4)
    try:
        replica.wait_ready()
        with httpx.Client(base_url=replica.base, timeout=30) as kept_alive:
            assert kept_alive.post("/v1/forecast", json=body).status_code == 200
            replica.proc.send_signal(signal.SIGTERM)
            # The signal is handled between two bytecodes of the main thread: poll until it shows.
            for _ in range(200):
                ready = httpx.get(f"{replica.base}/readyz", timeout=5)
                if ready.status_code != 200:
                    break
            assert ready.status_code == 503, ready.text
            assert "draining" in ready.text
            v2 = httpx.get(f"{replica.base}/v2/health/ready", timeout=5)
            assert v2.status_code == 503 and v2.json()["draining"] is True
            # Still serving: on the connection it already had, on a new one, and liveness stays fine.
            assert kept_alive.post("/v1/forecast", json=body).status_code == 200
            assert httpx.post(f"{replica.base}/v1/forecast", json=body, timeout=30).status_code == 200
            assert httpx.get(f"{replica.base}/healthz", timeout=5).status_code == 200
            assert replica.proc.poll() is None, "exited before the drain period ended"
        assert replica.proc.wait(timeout=DRAIN_SECONDS + 60) == 0, replica.tail()
    finally:
        replica.kill()
    assert "not ready from now on" in replica.tail()


def test_a_clean_stop_with_two_workers_leaves_nothing_in_the_temporary_directory(tmp_path: Path) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    replica = start_replica(
        tmp_path,
        forecast_only_repository(tmp_path),
        extra_env={"SEQSERVE_WORKERS": "2", "TMPDIR": str(scratch)},
    )
    try:
        replica.wait_ready()
        created = sorted(p.name for p in scratch.iterdir())
        # What the launcher made for its workers (the check below could not fail if it made nothing).
        assert any(name.startswith("seqserve-metrics-") for name in created), created
        assert any(name.startswith("seqserve-reload-") for name in created), created
        body = forecast_body(2)
        for _ in range(4):
            assert httpx.post(f"{replica.base}/v1/forecast", json=body, timeout=30).status_code == 200
        assert "seqserve_requests_total" in httpx.get(f"{replica.base}/metrics", timeout=10).text
        assert replica.stop() == 0, replica.tail()
    finally:
        replica.kill()
    left = sorted(p.name for p in scratch.iterdir() if p.name != ONNXRUNTIME_FILE)
    assert left == [], replica.tail()
