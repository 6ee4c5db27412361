"""Cross-file agreement: the chart, KServe, the Dockerfiles, compose and the app say the same things.

Selectors match the pod labels; the HPA and the PDB point at the Deployment; the PDB leaves room to evict;
probe paths are real routes of ``create_app()``; every ConfigMap key is a real setting; and the port is
the same wherever it appears.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_render import VALUE_SETS, one, rendered
from crd_shapes import predictor_as_pod, validate
from deploy_tools import DEPLOY, REPO, dev_tool, run
from starlette.routing import Match

from service.app import create_app
from service.config import Settings

KSERVE = DEPLOY / "kserve" / "inferenceservice.yaml"
V2_READY = "/v2/health/ready"


def _routes_match(path: str) -> bool:
    scope = {"type": "http", "path": path, "method": "GET", "root_path": "", "path_params": {}}
    return any(route.matches(scope)[0] is Match.FULL for route in create_app(Settings()).routes)


def _settings_from(env: dict[str, str]) -> Settings:
    """Every key must be a SEQSERVE_* setting with a valid value (Settings forbids unknown fields)."""
    assert all(key.startswith("SEQSERVE_") for key in env), env
    return Settings.model_validate({k.removeprefix("SEQSERVE_").lower(): v for k, v in env.items()})


def _kserve() -> dict[str, Any]:
    return dict(yaml.safe_load(KSERVE.read_text()))


@pytest.mark.parametrize("value_set", list(VALUE_SETS))
def test_selectors_match_the_pod_labels(value_set: str) -> None:
    docs = rendered(value_set)
    deployment = one(docs, "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels.items()
    assert one(docs, "Service")["spec"]["selector"] == selector
    for doc in docs:
        if doc["kind"] in {"PodDisruptionBudget", "ServiceMonitor", "PodMonitor"}:
            assert doc["spec"]["selector"]["matchLabels"] == selector, doc["kind"]
    for constraint in deployment["spec"]["template"]["spec"].get("topologySpreadConstraints", []):
        assert constraint["labelSelector"]["matchLabels"] == selector
    if "ServiceMonitor" in {d["kind"] for d in docs}:
        # A ServiceMonitor selects Services by label: the Service must carry the selector labels.
        assert selector.items() <= one(docs, "Service")["metadata"]["labels"].items()


@pytest.mark.parametrize("value_set", list(VALUE_SETS))
def test_hpa_and_pdb_target_the_deployment_and_leave_room_to_evict(value_set: str) -> None:
    docs = rendered(value_set)
    deployment = one(docs, "Deployment")
    name = deployment["metadata"]["name"]
    hpas = [d for d in docs if d["kind"] == "HorizontalPodAutoscaler"]
    pdbs = [d for d in docs if d["kind"] == "PodDisruptionBudget"]
    for hpa in hpas:
        assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
        assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
        metrics = {m["type"] for m in hpa["spec"]["metrics"]}
        assert metrics == {"Resource", "Pods"}, "CPU and queue pressure"
    min_replicas = hpas[0]["spec"]["minReplicas"] if hpas else deployment["spec"]["replicas"]
    for pdb in pdbs:
        assert pdb["spec"]["minAvailable"] < min_replicas


@pytest.mark.parametrize("value_set", list(VALUE_SETS))
def test_probe_paths_are_routes_of_the_app(value_set: str) -> None:
    (container,) = one(rendered(value_set), "Deployment")["spec"]["template"]["spec"]["containers"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        path = container[probe]["httpGet"]["path"]
        assert _routes_match(path), f"{probe} polls {path}, which create_app() does not serve"
    assert not _routes_match("/no-such-route")  # the check can fail
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"


@pytest.mark.parametrize("value_set", list(VALUE_SETS))
def test_config_map_holds_valid_settings_and_the_shutdown_fits_the_grace_period(value_set: str) -> None:
    docs = rendered(value_set)
    settings = _settings_from(one(docs, "ConfigMap")["data"])
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    pre_stop = int(container["lifecycle"]["preStop"]["exec"]["command"][1])
    after_sigterm = settings.drain_seconds + settings.graceful_shutdown_seconds
    assert pod["terminationGracePeriodSeconds"] > pre_stop + after_sigterm
    assert settings.graceful_shutdown_seconds > settings.request_timeout_seconds
    assert settings.host == "0.0.0.0"
    # Workers x ORT threads fit the CPUs requested (0 threads would mean the node's CPU count).
    cpus = int(container["resources"]["requests"]["cpu"])
    assert settings.ort_intra_op_threads > 0 and settings.workers * settings.ort_intra_op_threads <= cpus
    assert pod["enableServiceLinks"] is False and pod["automountServiceAccountToken"] is False
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True and security["allowPrivilegeEscalation"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 10001
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]


def test_ports_agree_across_service_dockerfiles_compose_chart_and_prometheus() -> None:
    port = Settings().port
    for dockerfile in ("Dockerfile", "Dockerfile.cuda"):
        text = (DEPLOY / dockerfile).read_text()
        assert f"SEQSERVE_PORT={port}" in text and re.search(rf"^EXPOSE {port}$", text, re.MULTILINE)
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    for name in ("seqserve", "seqserve-gpu"):
        assert compose[name]["environment"]["SEQSERVE_PORT"] == str(port)
        assert compose[name]["ports"][0].endswith(f":{port}")
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())["scrape_configs"]
    assert scrape[0]["dns_sd_configs"][0]["port"] == port
    for value_set in VALUE_SETS:
        docs = rendered(value_set)
        (container,) = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
        assert container["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}]
        assert one(docs, "ConfigMap")["data"]["SEQSERVE_PORT"] == str(port)
        assert one(docs, "Service")["spec"]["ports"][0]["targetPort"] == "http"


def test_kserve_predictor_runs_the_image_on_kserves_port_with_v2() -> None:
    isvc = _kserve()
    validate(isvc)
    (container,) = isvc["spec"]["predictor"]["containers"]
    assert container["name"] == "kserve-container"
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env.pop("PROTOCOL") == "v2" and env.pop("TMPDIR") == "/tmp"
    settings = _settings_from(env)
    assert settings.port == 8080 and container["ports"][0]["containerPort"] == 8080
    cpus = int(container["resources"]["requests"]["cpu"])
    assert settings.ort_intra_op_threads > 0 and settings.workers * settings.ort_intra_op_threads <= cpus
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["port"] == 8080
    assert container["readinessProbe"]["httpGet"]["path"] == V2_READY
    assert container["command"] == one(rendered("default"), "Deployment")["spec"]["template"]["spec"][
        "containers"
    ][0]["command"]
    pre_stop = int(container["lifecycle"]["preStop"]["exec"]["command"][1])
    grace = isvc["spec"]["predictor"]["terminationGracePeriodSeconds"]
    assert grace > pre_stop + settings.drain_seconds + settings.graceful_shutdown_seconds


@pytest.mark.parametrize("version", ["1.25.0", "1.37.0"])
def test_kserve_predictor_pod_spec_validates_strictly(version: str, tmp_path: Path) -> None:
    path = tmp_path / "predictor-pod.yaml"
    path.write_text(yaml.safe_dump(predictor_as_pod(_kserve())))
    assert "passed for resource" in run(dev_tool("kubernetes-validate"), "--strict", "-k", version, str(path))


def test_kserve_probe_paths_are_routes_of_the_app() -> None:
    (container,) = _kserve()["spec"]["predictor"]["containers"]
    paths = {container[p]["httpGet"]["path"] for p in ("startupProbe", "readinessProbe", "livenessProbe")}
    assert _routes_match(V2_READY), f"create_app() does not serve {V2_READY}"
    missing = sorted(p for p in paths if not _routes_match(p))
    assert not missing, f"KServe probes {missing}, which create_app() does not serve"
