"""prometheus-adapter's rules (deploy/prometheus-adapter/values.yaml) as plain PromQL.

The adapter fills ``<<.LabelMatchers>>`` with the pods the HPA asks about and ``<<.GroupBy>>`` with the
resource labels; ``promql`` does the same for one namespace, so tests can run the exact query.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

VALUES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus-adapter" / "values.yaml"


def rules() -> dict[str, dict[str, Any]]:
    """The custom rules by the metric name the HPA sees."""
    custom = yaml.safe_load(VALUES.read_text())["rules"]["custom"]
    return {rule["name"]["as"]: rule for rule in custom}


def promql(metric: str, namespace: str) -> str:
    query: str = rules()[metric]["metricsQuery"]
    return query.replace("<<.LabelMatchers>>", f'namespace="{namespace}"').replace(
        "<<.GroupBy>>", "namespace, pod"
    )
