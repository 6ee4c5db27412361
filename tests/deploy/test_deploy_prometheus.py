"""Prometheus config and rules: promtool's own checks and unit tests, plus the conventions we promise."""

from __future__ import annotations

from typing import Any

import yaml
from deploy_tools import DEPLOY, run, system_tool

from service.drift.psi import ACT

PROMETHEUS = DEPLOY / "prometheus"
REQUIRED_ALERTS = {
    "SeqserveHighErrorRatio", "SeqserveLatencyP99AboveSLO", "SeqserveRequestsShed", "SeqserveQueueBacklog",
    "SeqserveTargetDown", "SeqserveNoModelReady", "SeqserveInputDrift", "SeqserveOutputDrift",
}  # fmt: skip


def _rules(name: str) -> list[dict[str, Any]]:
    groups = yaml.safe_load((PROMETHEUS / "rules" / name).read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_promtool_check_config_and_rules() -> None:
    promtool = system_tool("promtool")
    assert "SUCCESS" in run(promtool, "check", "config", "prometheus.yml", cwd=PROMETHEUS)
    rule_files = sorted(str(p) for p in (PROMETHEUS / "rules").glob("*.yml"))
    assert len(rule_files) == 3
    run(promtool, "check", "rules", *rule_files)


def test_promtool_unit_tests_pass() -> None:
    promtool = system_tool("promtool")
    tests = sorted(str(p) for p in (PROMETHEUS / "tests").glob("*.yml"))
    assert tests
    assert "SUCCESS" in run(promtool, "test", "rules", *tests)


def test_every_alert_has_severity_summary_and_runbook() -> None:
    alerts = _rules("alerts.yml")
    assert {a["alert"] for a in alerts} == REQUIRED_ALERTS
    for alert in alerts:
        assert alert["labels"]["severity"] in {"page", "ticket"}, alert["alert"]
        assert alert["annotations"]["summary"].strip(), alert["alert"]
        assert len(alert["annotations"]["runbook"]) > 40, alert["alert"]
        assert "for" in alert, f"{alert['alert']} would fire on a single bad evaluation"


def test_every_alert_is_tested_firing_and_quiet() -> None:
    fired: set[str] = set()
    quiet: set[str] = set()
    for path in (PROMETHEUS / "tests").glob("*.yml"):
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (fired if check.get("exp_alerts") else quiet).add(check["alertname"])
    assert fired == REQUIRED_ALERTS, f"alerts never shown to fire: {REQUIRED_ALERTS - fired}"
    assert quiet == REQUIRED_ALERTS, f"alerts never shown to stay quiet: {REQUIRED_ALERTS - quiet}"


def test_thresholds_come_from_the_slo_knobs() -> None:
    knobs = {rule["record"] for rule in _rules("slo.yml")}
    assert knobs == {
        "seqserve:slo_latency_p99_seconds",
        "seqserve:slo_error_ratio",
        "seqserve:slo_queue_rows",
        "seqserve:drift_psi_act_threshold",
    }
    latency_routes = {r["labels"]["route"] for r in _rules("slo.yml") if r["record"].endswith("p99_seconds")}
    assert latency_routes == {"/v1/forecast", "/v1/sentiment"}
    exprs = {a["alert"]: a["expr"] for a in _rules("alerts.yml")}
    assert "seqserve:slo_latency_p99_seconds" in exprs["SeqserveLatencyP99AboveSLO"]
    assert "seqserve:slo_error_ratio" in exprs["SeqserveHighErrorRatio"]
    assert "seqserve:slo_queue_rows" in exprs["SeqserveQueueBacklog"]
    # One PSI convention everywhere (docs/drift.md): the act level here is service/drift/psi.py's ACT.
    (act,) = [r for r in _rules("slo.yml") if r["record"] == "seqserve:drift_psi_act_threshold"]
    assert act["expr"] == f"vector({ACT})"
    for alert in ("SeqserveInputDrift", "SeqserveOutputDrift"):
        assert "seqserve:drift_psi_act_threshold" in exprs[alert]


def test_scrape_config_targets_the_compose_services() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "seqserve"]
    compose = yaml.safe_load((DEPLOY.parent / "docker-compose.yml").read_text())["services"]
    (dns,) = job["dns_sd_configs"]
    assert set(dns["names"]) == {name for name in compose if name.startswith("seqserve")}
    assert dns["port"] == 8000 and job["metrics_path"] == "/metrics"
    # The alert rules select the job by this name.
    assert all('job="seqserve"' in a["expr"] for a in _rules("alerts.yml") if "up{" in a["expr"])
