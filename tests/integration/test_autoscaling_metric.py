"""The HPA's queue-pressure metric, computed by a real Prometheus from two real replicas.

Two ``python -m service`` replicas are scraped every second, labelled ``namespace`` and ``pod`` as the
chart's ServiceMonitor labels them. The prometheus-adapter rule's exact PromQL
(deploy/prometheus-adapter/values.yaml, with the adapter's placeholders filled for one namespace) must
return one value per pod: 0 for both while idle, then, while one replica is loaded by concurrent
forecast requests, a positive queue wait for that pod and still 0 for the idle one.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
import yaml
from replica_tools import Replica, forecast_body, forecast_only_repository, free_port, start_replica

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "deploy"))
from adapter_rules import promql

METRIC = "seqserve_queue_wait_seconds_per_request"
NAMESPACE = "serving"
T = TypeVar("T")


def _poll(what: str, check: Callable[[], T | None], timeout: float = 60.0) -> T:
    deadline = time.monotonic() + timeout
    while (result := check()) is None:
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.25)
    return result


def _query(prom: str, expr: str) -> dict[str, float]:
    body = httpx.get(f"{prom}/api/v1/query", params={"query": expr}, timeout=10).json()
    assert body["status"] == "success", body
    return {r["metric"]["pod"]: float(r["value"][1]) for r in body["data"]["result"]}


@pytest.fixture
def scraped(tmp_path: Path) -> Iterator[tuple[dict[str, Replica], str]]:
    if shutil.which("prometheus") is None:
        pytest.fail("prometheus is not installed; bin/test installs Debian's package")
    models = forecast_only_repository(tmp_path)
    replicas = {pod: start_replica(tmp_path, models) for pod in ("replica-a", "replica-b")}
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
        "scrape_configs": [{
            "job_name": "seqserve",
            "static_configs": [
                {"targets": [f"127.0.0.1:{r.port}"], "labels": {"namespace": NAMESPACE, "pod": pod}}
                for pod, r in replicas.items()
            ],
        }],
    }  # fmt: skip
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    prometheus = subprocess.Popen(
        ["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}",
         f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        for replica in replicas.values():
            replica.wait_ready()
        yield replicas, f"http://127.0.0.1:{port}"
    finally:
        prometheus.terminate()
        prometheus.wait(timeout=30)
        for replica in replicas.values():
            replica.kill()


def test_adapter_query_gives_a_per_pod_queue_wait_that_rises_under_load(
    scraped: tuple[dict[str, Replica], str],
) -> None:
    replicas, prom = scraped
    expr = promql(METRIC, NAMESPACE)

    def idle_values() -> dict[str, float] | None:
        values = _query(prom, expr)
        return values if set(values) == set(replicas) else None

    # Idle: a value for each pod (not "no data"), and it is 0.
    assert _poll("both pods in the adapter query", idle_values) == {"replica-a": 0.0, "replica-b": 0.0}

    stop = threading.Event()
    body = forecast_body(16)

    def load() -> None:
        with httpx.Client(base_url=replicas["replica-a"].base, timeout=120) as client:
            while not stop.is_set():
                assert client.post("/v1/forecast", json=body).status_code == 200

    threads = [threading.Thread(target=load, daemon=True) for _ in range(8)]
    for thread in threads:
        thread.start()
    try:
        def loaded_values() -> dict[str, float] | None:
            values = _query(prom, expr)
            return values if values.get("replica-a", 0.0) > 0 else None

        values = _poll("a queue wait on the loaded pod", loaded_values)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=120)
    print(f"\n{METRIC} per pod under load: {values}")
    assert set(values) == {"replica-a", "replica-b"}, values
    assert values["replica-a"] > 0 and values["replica-b"] == 0.0, values
    # Per request, in seconds: a waiting row never waits longer than the request budget.
    assert values["replica-a"] < 120, values


