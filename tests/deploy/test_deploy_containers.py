"""Dockerfiles and docker-compose.yml, validated statically (the Helm chart: test_deploy_helm.py)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from deploy_tools import DEPLOY, REPO, dev_tool, run

from service.config import Settings

DOCKERFILES = [DEPLOY / "Dockerfile", DEPLOY / "Dockerfile.cuda"]


def _compose() -> dict[str, Any]:
    return dict(yaml.safe_load((REPO / "docker-compose.yml").read_text()))


def _integration_test() -> ModuleType:
    # Loaded by path: test folders are not packages.
    path = REPO / "tests" / "integration" / "test_observability.py"
    spec = importlib.util.spec_from_file_location("observability_under_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint(dockerfile: Path) -> None:
    run(dev_tool("hadolint"), str(dockerfile))


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_conventions(dockerfile: Path) -> None:
    text = dockerfile.read_text()
    bases = re.findall(r"^FROM (\S+)", text, flags=re.MULTILINE)
    assert len(bases) >= 2, "multi-stage: build tools stay out of the final image"
    assert all(re.search(r":\d", base) for base in bases), f"pin base images to a version: {bases}"
    assert re.search(r"^USER 10001$", text, flags=re.MULTILINE), "run as the non-root user"
    assert "HEALTHCHECK" in text and "/readyz" in text
    assert 'CMD ["python", "-m", "service"]' in text
    instructions = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    assert "torch" not in instructions.lower() and "training" not in instructions
    assert "SEQSERVE_MODEL_REPOSITORY=/app/models" in text


def test_cuda_image_swaps_onnxruntime_for_the_gpu_build() -> None:
    text = (DEPLOY / "Dockerfile.cuda").read_text()
    assert re.search(r"^FROM nvidia/cuda:[\d.]+-cudnn-runtime-", text, flags=re.MULTILINE)
    assert "onnxruntime==', 'onnxruntime-gpu==" in text and "SEQSERVE_PROVIDERS=cuda" in text


def test_compose_file_matches_the_compose_schema() -> None:
    output = run(
        dev_tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", "docker-compose.yml"
    )
    assert "ok" in output


def test_compose_runs_the_service_the_integration_test_runs() -> None:
    integration = _integration_test()
    service = _compose()["services"]["seqserve"]
    assert service["command"] == integration.SERVICE_COMMAND
    assert {k: str(v) for k, v in service["environment"].items()} == integration.SERVICE_ENV
    # The test replaces only where it listens and where the models are; everything else is as shipped.
    assert set(integration.LOCAL_OVERRIDES) <= set(integration.SERVICE_ENV)
    assert service["ports"] == ["8000:8000"] and service["environment"]["SEQSERVE_PORT"] == "8000"
    settings = Settings.model_validate(
        {k.removeprefix("SEQSERVE_").lower(): v for k, v in integration.SERVICE_ENV.items()}
    )
    assert settings.providers == "cpu"


def test_compose_gpu_profile_prometheus_and_grafana() -> None:
    services = _compose()["services"]
    gpu = services["seqserve-gpu"]
    assert gpu["profiles"] == ["gpu"] and gpu["build"]["dockerfile"] == "deploy/Dockerfile.cuda"
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    assert (
        gpu["environment"]["SEQSERVE_PROVIDERS"] == "cuda"
        and gpu["command"] == services["seqserve"]["command"]
    )
    assert "profiles" not in services["seqserve"]
    prometheus = services["prometheus"]
    assert prometheus["ports"] == ["9090:9090"]
    assert "./deploy/prometheus:/etc/prometheus:ro" in prometheus["volumes"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    grafana = services["grafana"]
    assert grafana["ports"] == ["3000:3000"]
    password = grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD"]
    assert re.fullmatch(r"\$\{GRAFANA_ADMIN_PASSWORD:\?[^}]+\}", password), (
        "the password must come from the environment"
    )
