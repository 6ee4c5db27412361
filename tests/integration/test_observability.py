"""The service under uvicorn, a real Prometheus scraping it every second, and every query we ship.

Checks that every Grafana panel query and every recording and alert rule evaluates without error in
Prometheus itself, and that panels return data where the traffic sent here means they must. The
service is launched exactly as docker-compose.yml runs it (tests/deploy checks that they agree), with
only the location-dependent settings replaced.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = REPO / "deploy" / "prometheus"
DASHBOARD = REPO / "deploy" / "grafana" / "dashboards" / "seqserve.json"

# docker-compose.yml's seqserve service runs this command with this environment.
SERVICE_COMMAND = ["python", "-m", "service"]
SERVICE_ENV = {
    "SEQSERVE_HOST": "0.0.0.0",
    "SEQSERVE_PORT": "8000",
    "SEQSERVE_MODEL_REPOSITORY": "/app/models",
    "SEQSERVE_PROVIDERS": "cpu",
}
# Where it listens and where the models are differ between a container and this test; nothing else.
LOCAL_OVERRIDES = ("SEQSERVE_HOST", "SEQSERVE_PORT", "SEQSERVE_MODEL_REPOSITORY")
# Grafana's variables as "All" would expand them; $__rate_interval spans the whole test.
PANEL_VARIABLES = {"$instance": ".+", "$model": ".+", "$__rate_interval": "45s"}

T = TypeVar("T")
GENERATE_MODEL = "shakespeare-char"
GENERATION_PANELS = {
    "Generated tokens per second", "Time to first token p50 / p99", "Inter-token latency p50 / p99",
    "Active generation streams", "Streams per decode step",
}  # fmt: skip


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def poll(what: str, check: Callable[[], T | None], timeout: float = 45.0) -> T:
    """Wait for Prometheus to scrape and evaluate: retry ``check`` until it returns a value."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.25)


def _model_repository(tmp: Path) -> Path:
    """The committed models plus one broken copy, so that 503 'unavailable' traffic is deterministic."""
    repo = tmp / "models"
    repo.mkdir()
    for model in (REPO / "models").iterdir():
        if model.is_dir():
            (repo / model.name).symlink_to(model, target_is_directory=True)
    broken = repo / "zz-broken" / "1"
    shutil.copytree(REPO / "models" / "m4-hourly" / "1", broken)
    manifest = json.loads((broken / "model.json").read_text())
    manifest["name"] = "zz-broken"
    (broken / "model.json").write_text(json.dumps(manifest))
    (broken / "model.onnx").write_bytes(b"not the model the manifest hashes")
    return repo


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    if shutil.which("prometheus") is None:
        pytest.fail("prometheus is not installed; bin/test installs Debian's package")
    tmp = tmp_path_factory.mktemp("observability")
    service_port, prom_port = _free_port(), _free_port()
    local = {"SEQSERVE_HOST": "127.0.0.1", "SEQSERVE_PORT": str(service_port),
             "SEQSERVE_MODEL_REPOSITORY": str(_model_repository(tmp))}  # fmt: skip
    assert set(local) == set(LOCAL_OVERRIDES)
    command = [sys.executable if arg == "python" else arg for arg in SERVICE_COMMAND]
    env = {**os.environ, **SERVICE_ENV, **local}
    service = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )
    config = tmp / "prometheus.yml"
    config.write_text(yaml.safe_dump(_prometheus_config(f"127.0.0.1:{service_port}")))
    prometheus = subprocess.Popen(
        ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={tmp / 'data'}",
         f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn"],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )  # fmt: skip
    service_url, prom_url = f"http://127.0.0.1:{service_port}", f"http://127.0.0.1:{prom_port}"
    try:
        poll("the service to start", lambda: _get_ok(f"{service_url}/healthz"), timeout=60)
        poll("prometheus to start", lambda: _get_ok(f"{prom_url}/-/ready"), timeout=60)
        yield service_url, prom_url
    finally:
        for proc in (service, prometheus):
            proc.terminate()
            proc.wait(timeout=30)


def _get_ok(url: str) -> bool | None:
    try:
        return True if httpx.get(url, timeout=2).status_code == 200 else None
    except httpx.TransportError:
        return None


def _prometheus_config(target: str) -> dict[str, Any]:
    """The shipped config with the compose DNS discovery replaced by this test's target, 1 s cadence."""
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(PROMETHEUS_DIR / pattern) for pattern in config["rule_files"]]
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "seqserve"]
    del job["dns_sd_configs"]
    job["static_configs"] = [{"targets": [target]}]
    config["scrape_configs"] = [job]
    return config


def query(prom_url: str, expr: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{prom_url}/api/v1/query", params={"query": expr}, timeout=10)
    body = response.json()
    assert response.status_code == 200 and body["status"] == "success", f"{expr}: {body}"
    return list(body["data"]["result"])


def _send_traffic(url: str, sentiment: bool, generate: bool = False) -> int:
    """One wave of good and bad requests; returns how many went to /v1/forecast."""
    values = [100.0 + (i % 24) for i in range(200)]
    with httpx.Client(base_url=url, timeout=30) as client:
        forecast = [{"model": "m4-hourly", "series": [{"values": values}] * n} for n in (1, 2, 3)]
        ok = [client.post("/v1/forecast", json=body) for body in forecast]
        assert [r.status_code for r in ok] == [200, 200, 200]
        as_json = {"content-type": "application/json"}
        bad = {
            422: client.post("/v1/forecast", json={"series": [{"values": [1.0, 2.0]}]}),
            400: client.post("/v1/forecast", content=b"{not json", headers=as_json),
            413: client.post("/v1/forecast", content=b" " * (1024 * 1024 + 1), headers=as_json),
            503: client.post("/v1/forecast", json={"model": "zz-broken", "series": [{"values": values}]}),
        }
        assert {status: r.status_code for status, r in bad.items()} == {s: s for s in bad}
        assert client.get("/no/such/route").status_code == 404
        assert client.get("/v1/models/m4-hourly").status_code == 200
        if sentiment:
            texts = {"texts": ["a gripping, funny film", "dull and far too long", "it was fine"]}
            assert client.post("/v1/sentiment", json=texts).status_code == 200
            assert client.post("/v1/sentiment", json={"texts": ["   "]}).status_code == 422
        if generate:
            prompt = {"prompt": "ROMEO:\n", "max_new_tokens": 20, "seed": 1}
            assert client.post("/v1/generate", json=prompt).status_code == 200
            assert client.post("/v1/generate", json={**prompt, "stream": True}).status_code == 200
    return len(ok) + len(bad)


def _scraped_forecasts(prom_url: str, expected: int) -> bool | None:
    result = query(prom_url, 'sum(seqserve_requests_total{route="/v1/forecast"})')
    return True if result and float(result[0]["value"][1]) >= expected else None


@pytest.fixture(scope="module")
def traffic(stack: tuple[str, str]) -> dict[str, bool]:
    service_url, prom_url = stack
    models = httpx.get(f"{service_url}/v1/models", timeout=10).json()["models"]
    sentiment = any(m["name"] == "sst2-bilstm" and m["state"] == "ready" for m in models)
    generate = any(m["name"] == GENERATE_MODEL and m["state"] == "ready" for m in models)
    # Two waves with a scrape between them, so every counter has an increase inside the rate windows.
    sent = _send_traffic(service_url, sentiment, generate)
    poll("the first wave to be scraped", lambda: _scraped_forecasts(prom_url, sent))
    sent += _send_traffic(service_url, sentiment, generate)
    poll("the second wave to be scraped", lambda: _scraped_forecasts(prom_url, sent))
    recorded = 'instance_route_status:seqserve_requests:rate1m{route="/v1/forecast", status="200"} > 0'
    poll("recording rules over the traffic", lambda: query(prom_url, recorded) or None)
    return {"sentiment": sentiment, "generate": generate}


def _rules() -> list[dict[str, Any]]:
    return [
        rule
        for path in sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
    ]


def _panel_targets() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    targets = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for variable, value in PANEL_VARIABLES.items():
                expr = expr.replace(variable, value)
            assert "$" not in expr, f"unsubstituted variable in {panel['title']}: {expr}"
            targets.append((panel["title"], expr))
    return targets


def test_prometheus_loaded_every_rule_and_evaluates_it_cleanly(
    stack: tuple[str, str], traffic: dict[str, bool]
) -> None:
    _, prom_url = stack
    names = sorted(r.get("record") or r["alert"] for r in _rules())

    def evaluated() -> list[dict[str, Any]] | None:
        groups = httpx.get(f"{prom_url}/api/v1/rules", timeout=10).json()["data"]["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        return rules if all(not r["lastEvaluation"].startswith("0001") for r in rules) else None

    loaded = poll("every rule to be evaluated", evaluated)
    assert sorted(r["name"] for r in loaded) == names
    for rule in loaded:
        assert rule["health"] == "ok" and not rule.get("lastError"), rule
    for rule in _rules():
        query(prom_url, rule["expr"])  # asserts success
    # Every recorded series exists, the 5xx ratio included: the 'broken' model answers 503.
    for rule in _rules():
        if "record" in rule:
            assert query(prom_url, rule["record"]), f"no data for recording rule {rule['record']}"


def test_every_panel_query_runs_and_returns_data(stack: tuple[str, str], traffic: dict[str, bool]) -> None:
    _, prom_url = stack
    optional = set() if traffic["sentiment"] else {"Sentiment label mix"}
    optional |= set() if traffic["generate"] else GENERATION_PANELS
    for title, expr in _panel_targets():
        if title in optional:
            query(prom_url, expr)
            continue
        assert poll(f"data for panel {title!r}", lambda expr=expr: query(prom_url, expr) or None, timeout=15)
    for variable_source in ("seqserve_build_info", 'seqserve_model_info{instance=~".+"}'):
        assert query(prom_url, variable_source), f"dashboard variable source {variable_source} is empty"


def test_panels_show_what_the_traffic_did(stack: tuple[str, str], traffic: dict[str, bool]) -> None:
    _, prom_url = stack
    targets = dict(_panel_targets())  # first target of each panel

    def series(title: str) -> dict[str, float]:
        return {
            json.dumps(r["metric"], sort_keys=True): float(r["value"][1])
            for r in query(prom_url, targets[title])
        }

    rates = {tuple(json.loads(k).values()): v for k, v in series("Request rate by route and status").items()}
    assert rates[("/v1/forecast", "200")] > 0
    assert {("/v1/forecast", s) for s in ("400", "413", "422", "503")} | {("unmatched", "404")} <= set(rates)
    error_ratio = query(prom_url, next(e for t, e in _panel_targets() if t == "Error ratio (/v1 routes)"))
    assert float(error_ratio[0]["value"][1]) > 0, "the 503s for the broken model are 5xx"
    rows = series("Rows per second by model")
    assert sum(v for k, v in rows.items() if json.loads(k)["model"] == "m4-hourly") > 0
    rejected = series("Rejections by reason")
    assert rejected[json.dumps({"model": "m4-hourly", "reason": "invalid_input"}, sort_keys=True)] > 0
    assert rejected[json.dumps({"model": "zz-broken", "reason": "unavailable"}, sort_keys=True)] > 0
    loaded = [r["metric"] for r in query(prom_url, targets["Loaded models"])]
    assert {(m["model"], m["provider"]) for m in loaded} >= {("m4-hourly", "CPUExecutionProvider")}
    assert "zz-broken" not in {m["model"] for m in loaded}
    assert sum(series("Forecast input length").values()) > 0
    assert all(v > 0 for v in series("Process memory (RSS)").values())
    if traffic["sentiment"]:
        assert sum(series("Sentiment label mix").values()) == pytest.approx(1.0)
    if traffic["generate"]:
        assert series("Generated tokens per second")[json.dumps({"model": GENERATE_MODEL})] > 0
        assert series("Active generation streams")[json.dumps({"model": GENERATE_MODEL})] == 0
