"""The Helm chart: helm lint --strict, rendering of every value set, and strict Kubernetes schemas.

Rendered objects are validated with kubernetes-validate --strict against the oldest and the newest
Kubernetes minor version the chart claims (Chart.yaml kubeVersion; kubernetes-validate ships schemas for
1.25-1.37); the Prometheus Operator objects against tests/deploy/crd_shapes.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from chart_render import CHART, CUSTOM_KINDS, VALUE_SETS, helm, kinds, one, rendered
from crd_shapes import validate
from deploy_tools import dev_tool, run
from helm_tool import HELM_VERSION

# The chart's kubeVersion floor and kubernetes-validate's newest schema.
KUBERNETES_VERSIONS = ("1.25.0", "1.37.0")


def test_helm_is_the_pinned_version() -> None:
    assert f'Version:"{HELM_VERSION}"' in helm("version").stdout


def test_chart_claims_the_versions_validated() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["kubeVersion"] == f">={KUBERNETES_VERSIONS[0]}-0"


@pytest.mark.parametrize("value_set", list(VALUE_SETS))
def test_helm_lint_strict(value_set: str) -> None:
    values = VALUE_SETS[value_set]
    result = helm("lint", "--strict", str(CHART), *(["--values", str(values)] if values else []))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout


def test_value_sets_cover_gpu_and_pvc_with_service_monitor() -> None:
    assert {"default", "gpu", "pvc-servicemonitor"} <= set(VALUE_SETS)
    assert kinds(rendered("default")) == {
        "ConfigMap", "Service", "Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget",
    }  # fmt: skip
    assert "ServiceMonitor" in kinds(rendered("pvc-servicemonitor"))


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("value_set", list(VALUE_SETS))
def test_rendered_objects_validate_strictly(value_set: str, version: str, tmp_path: Path) -> None:
    docs = [d for d in rendered(value_set) if d["kind"] not in CUSTOM_KINDS]
    path = tmp_path / "rendered.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    output = run(dev_tool("kubernetes-validate"), "--strict", "-k", version, str(path))
    assert output.count("passed for resource") == len(docs), output


@pytest.mark.parametrize("value_set", list(VALUE_SETS))
def test_custom_resources_match_their_crd_shape(value_set: str) -> None:
    for doc in rendered(value_set):
        if doc["kind"] in CUSTOM_KINDS:
            validate(doc)


def test_gpu_values_use_the_cuda_image_a_gpu_and_gpu_nodes() -> None:
    deployment = one(rendered("gpu"), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"].endswith(":0.1.0-cuda")
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert one(rendered("gpu"), "ConfigMap")["data"]["SEQSERVE_PROVIDERS"] == "cuda"
    assert one(rendered("default"), "ConfigMap")["data"]["SEQSERVE_PROVIDERS"] == "cpu"


def test_pvc_values_mount_the_model_repository_read_only() -> None:
    docs = rendered("pvc-servicemonitor")
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if "persistentVolumeClaim" in v]
    assert volume["persistentVolumeClaim"] == {"claimName": "seqserve-models", "readOnly": True}
    (mount,) = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == volume["name"]]
    assert mount["readOnly"] is True
    assert one(docs, "ConfigMap")["data"]["SEQSERVE_MODEL_REPOSITORY"] == mount["mountPath"] == "/models"
    # The default bakes the models into the image: no volume but /tmp.
    default_pod = one(rendered("default"), "Deployment")["spec"]["template"]["spec"]
    assert [v["name"] for v in default_pod["volumes"]] == ["tmp"]


def test_api_keys_come_from_a_secret_reference_only() -> None:
    (container,) = one(rendered("fixed-podmonitor-apikeys"), "Deployment")["spec"]["template"]["spec"][
        "containers"
    ]
    (env,) = [e for e in container["env"] if e["name"] == "SEQSERVE_API_KEYS"]
    assert env == {
        "name": "SEQSERVE_API_KEYS",
        "valueFrom": {"secretKeyRef": {"name": "seqserve-api-keys", "key": "api-keys"}},
    }
    assert not [d for d in rendered("fixed-podmonitor-apikeys") if d["kind"] == "Secret"]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["lifecycle.terminationGracePeriodSeconds=25"], "must exceed preStopSeconds"),
        (["podDisruptionBudget.minAvailable=2"], "must be below the minimum replica count"),
        (["apiKeys.keys={secret}"], "API keys never go in values"),
        (["config.SEQSERVE_PORT=9000"], "is set by the chart"),
        (["modelRepository.source=pvc"], "claimName is required"),
        (["metrics.serviceMonitor.enabled=true", "metrics.podMonitor.enabled=true"], "not both"),
        # values.schema.json: a misspelt key is refused instead of silently ignored.
        (["autoscaling.maxReplica=20"], "additional properties 'maxReplica' not allowed"),
        (["modelRepository.source=s3"], "modelRepository/source"),
    ],
)
def test_chart_refuses_values_that_would_lose_requests_or_leak(values: list[str], message: str) -> None:
    result = helm("template", "seqserve", str(CHART), *[a for v in values for a in ("--set", v)])
    assert result.returncode != 0 and message in result.stderr, result.stderr


def test_values_comments_explain_the_shutdown_arithmetic() -> None:
    text = (CHART / "values.yaml").read_text()
    values = yaml.safe_load(text)["lifecycle"]
    assert re.search(
        rf"{values['terminationGracePeriodSeconds']} >= {values['preStopSeconds']} \(preStop\) \+ "
        rf"{values['drainSeconds']} \(drain\) \+ {values['gracefulShutdownSeconds']} \(graceful\)",
        text,
    )
