"""Render the Helm chart (with the verified helm binary) and hand out its objects by kind."""

from __future__ import annotations

import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from deploy_tools import DEPLOY
from helm_tool import helm_binary

CHART = DEPLOY / "helm" / "seqserve"
# The chart's own test value sets (ci/*-values.yaml, helm chart-testing's convention) plus the defaults.
VALUE_SETS: dict[str, Path | None] = {
    "default": None,
    **{p.name.removesuffix("-values.yaml"): p for p in sorted((CHART / "ci").glob("*-values.yaml"))},
}
# Not in kubernetes-validate's schemas: checked by tests/deploy/crd_shapes.py instead.
CUSTOM_KINDS = {"ServiceMonitor", "PodMonitor", "InferenceService"}
RELEASE = "seqserve"


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(helm_binary()), *args], capture_output=True, text=True, timeout=60, check=False
    )


def template(*extra: str) -> str:
    result = helm("template", RELEASE, str(CHART), "--namespace", "serving", *extra)
    assert result.returncode == 0, result.stderr
    return result.stdout


@cache
def rendered(value_set: str) -> tuple[dict[str, Any], ...]:
    values = VALUE_SETS[value_set]
    text = template(*(["--values", str(values)] if values else []))
    return tuple(doc for doc in yaml.safe_load_all(text) if doc)


def one(docs: tuple[dict[str, Any], ...], kind: str) -> dict[str, Any]:
    (found,) = [d for d in docs if d["kind"] == kind]
    return found


def kinds(docs: tuple[dict[str, Any], ...]) -> set[str]:
    return {d["kind"] for d in docs}
