"""The Grafana dashboard and provisioning: every panel has a unit, a datasource and the template filters."""

from __future__ import annotations

import json
from typing import Any

import yaml
from deploy_tools import DEPLOY, REPO

GRAFANA = DEPLOY / "grafana"
# The panels the observability issue asks for, by title.
REQUIRED_PANELS = {
    "Request rate by route and status", "Error ratio (/v1 routes)", "Latency p50 / p95 / p99 by route",
    "Requests in flight", "Rows per second by model", "Average batch size", "Batch size distribution",
    "Queue wait p99", "Inference time p99", "Rejections by reason", "Loaded models", "Sentiment label mix",
    "Forecast input length", "Process CPU", "Process memory (RSS)",
    "Input drift (PSI) by feature", "Output drift (PSI) by feature", "Drift window rows",
    "Generated tokens per second", "Time to first token p50 / p99", "Inter-token latency p50 / p99",
    "Active generation streams", "Streams per decode step",
}  # fmt: skip
# Panels about models must follow the model variable too.
MODEL_PANELS = REQUIRED_PANELS - {
    "Request rate by route and status", "Error ratio (/v1 routes)", "Latency p50 / p95 / p99 by route",
    "Requests in flight", "Process CPU", "Process memory (RSS)",
}  # fmt: skip


def _dashboard() -> dict[str, Any]:
    return dict(json.loads((GRAFANA / "dashboards" / "seqserve.json").read_text()))


def _panels() -> list[dict[str, Any]]:
    return [p for p in _dashboard()["panels"] if p["type"] != "row"]


def test_dashboard_has_the_required_panels_with_units() -> None:
    panels = _panels()
    titles = [p["title"] for p in panels]
    assert len(titles) == len(set(titles)), "panel titles must be unique"
    assert set(titles) >= REQUIRED_PANELS
    for panel in panels:
        assert panel["fieldConfig"]["defaults"]["unit"], f"{panel['title']} has no unit"
        assert panel["description"], panel["title"]
        assert panel["targets"], panel["title"]
    units = {p["title"]: p["fieldConfig"]["defaults"]["unit"] for p in panels}
    assert units["Latency p50 / p95 / p99 by route"] == units["Queue wait p99"] == "s"
    assert units["Process memory (RSS)"] == "bytes"
    assert units["Error ratio (/v1 routes)"] == "percentunit"


def test_every_query_is_templated_by_instance_and_model_panels_by_model() -> None:
    variables = {v["name"]: v for v in _dashboard()["templating"]["list"]}
    assert set(variables) == {"instance", "model"}
    assert all(v["includeAll"] and v["multi"] for v in variables.values())
    for panel in _panels():
        for target in panel["targets"]:
            assert 'instance=~"$instance"' in target["expr"], panel["title"]
            if panel["title"] in MODEL_PANELS:
                assert 'model=~"$model"' in target["expr"], panel["title"]


def test_panels_use_the_provisioned_datasource() -> None:
    provisioning = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    (datasource,) = provisioning["datasources"]
    assert datasource["url"] == "http://prometheus:9090"
    expected = {"type": "prometheus", "uid": datasource["uid"]}
    for panel in _panels():
        assert panel["datasource"] == expected, panel["title"]
        assert all(t["datasource"] == expected for t in panel["targets"]), panel["title"]
    assert all(v["datasource"] == expected for v in _dashboard()["templating"]["list"])


def test_dashboard_provider_reads_the_folder_compose_mounts() -> None:
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "seqserve.yml").read_text())
    path = provider["providers"][0]["options"]["path"]
    grafana = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]["grafana"]
    assert f"./deploy/grafana/dashboards:{path}:ro" in grafana["volumes"]
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in grafana["volumes"]


def test_panel_layout_does_not_overlap() -> None:
    cells: set[tuple[int, int]] = set()
    for panel in _dashboard()["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        area = {
            (x, y) for x in range(pos["x"], pos["x"] + pos["w"]) for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not cells & area, f"{panel['title']} overlaps another panel"
        cells |= area
