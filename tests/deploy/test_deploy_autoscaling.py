"""The queue-pressure metric: adapter rules that parse, select our metrics, and feed the chart's HPA.

That the query returns a per-pod value that rises under load is shown against a real Prometheus in
tests/integration/test_autoscaling_metric.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from adapter_rules import VALUES, promql, rules
from chart_render import VALUE_SETS, rendered
from deploy_tools import run, system_tool
from prometheus_client.metrics import MetricWrapperBase

from service import metrics


def test_adapter_rules_map_namespace_and_pod_and_select_seqserve_series() -> None:
    exported = {m._name for m in vars(metrics).values() if isinstance(m, MetricWrapperBase)}
    assert yaml.safe_load(VALUES.read_text())["rules"]["default"] is False
    for name, rule in rules().items():
        assert rule["resources"]["overrides"] == {
            "namespace": {"resource": "namespace"},
            "pod": {"resource": "pod"},
        }, name
        (series,) = re.findall(r"^(\w+)\{", rule["seriesQuery"])
        assert re.match(rule["name"]["matches"], series), name
        base = re.sub(r"_(count|sum|bucket)$", "", series)
        assert base in exported or f"{base}_total" in exported, f"{name}: {series} is not a seqserve metric"
        for used in re.findall(r"(seqserve_\w+)\{<<\.LabelMatchers>>\}", rule["metricsQuery"]):
            assert re.sub(r"_(count|sum|bucket)$", "", used) in exported, used
        assert "sum by (<<.GroupBy>>)" in rule["metricsQuery"], f"{name} must be per pod"


def test_adapter_queries_parse(tmp_path: Path) -> None:
    records = [{"record": f"adapter:{name}", "expr": promql(name, "serving")} for name in rules()]
    groups = [{"name": "adapter", "rules": records}]
    path = tmp_path / "adapter-rules.yml"
    path.write_text(yaml.safe_dump({"groups": groups}))
    assert "SUCCESS" in run(system_tool("promtool"), "check", "rules", str(path))


def test_every_hpa_pods_metric_is_served_by_the_adapter() -> None:
    served = set(rules())
    for value_set in VALUE_SETS:
        for doc in rendered(value_set):
            if doc["kind"] == "HorizontalPodAutoscaler":
                pods = [m["pods"]["metric"]["name"] for m in doc["spec"]["metrics"] if m["type"] == "Pods"]
                assert pods and set(pods) <= served, (value_set, pods)
