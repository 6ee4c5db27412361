"""Structural schemas for the custom resources we ship (kubernetes-validate has none for CRDs).

Each schema is the subset of the CRD's openAPIV3Schema that our objects use (Prometheus Operator
monitoring.coreos.com/v1 ServiceMonitor and PodMonitor, KServe serving.kserve.io/v1beta1
InferenceService), with ``additionalProperties: false`` wherever we set fields, so a misspelt or
misplaced field fails here as it would be pruned or refused by the API server. The InferenceService
predictor is a PodSpec plus KServe's component fields: its PodSpec part is validated by
kubernetes-validate as a Pod (``predictor_as_pod``).
"""

from __future__ import annotations

from typing import Any

import jsonschema

_STR = {"type": "string"}
_LABELS = {"type": "object", "additionalProperties": _STR}
_METADATA = {
    "type": "object",
    "required": ["name"],
    "properties": {"name": _STR, "namespace": _STR, "labels": _LABELS, "annotations": _LABELS},
    "additionalProperties": False,
}
_SELECTOR = {
    "type": "object",
    "properties": {"matchLabels": {**_LABELS, "minProperties": 1}},
    "required": ["matchLabels"],
    "additionalProperties": False,
}
_NAMESPACE_SELECTOR = {
    "type": "object",
    "properties": {"any": {"type": "boolean"}, "matchNames": {"type": "array", "items": _STR}},
    "additionalProperties": False,
}
_DURATION = {"type": "string", "pattern": r"^(0|(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"}
_ENDPOINT = {
    "type": "object",
    "required": ["port"],
    "properties": {"port": _STR, "path": {"type": "string", "pattern": "^/"}, "interval": _DURATION,
                   "scheme": {"enum": ["http", "https"]}},
    "additionalProperties": False,
}  # fmt: skip


def _monitor(kind: str, endpoints_field: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "monitoring.coreos.com/v1"},
            "kind": {"const": kind},
            "metadata": _METADATA,
            "spec": {
                "type": "object",
                "required": ["selector", endpoints_field],
                "properties": {
                    "selector": _SELECTOR,
                    "namespaceSelector": _NAMESPACE_SELECTOR,
                    endpoints_field: {"type": "array", "minItems": 1, "items": _ENDPOINT},
                },
                "additionalProperties": False,
            },
        },
        "additionalProperties": False,
    }


# KServe's ComponentExtensionSpec fields that sit beside the PodSpec in spec.predictor.
PREDICTOR_COMPONENT_FIELDS = {
    "minReplicas", "maxReplicas", "scaleTarget", "scaleMetric", "containerConcurrency", "timeout",
    "canaryTrafficPercent", "logger", "batcher", "labels", "annotations", "deploymentStrategy",
}  # fmt: skip
_INFERENCE_SERVICE = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "serving.kserve.io/v1beta1"},
        "kind": {"const": "InferenceService"},
        "metadata": _METADATA,
        "spec": {
            "type": "object",
            "required": ["predictor"],
            "properties": {
                "predictor": {
                    "type": "object",
                    "required": ["containers"],
                    "properties": {
                        "minReplicas": {"type": "integer", "minimum": 0},
                        "maxReplicas": {"type": "integer", "minimum": 1},
                        "containers": {"type": "array", "minItems": 1, "maxItems": 1},
                    },
                },
            },
            "additionalProperties": False,
        },
    },
    "additionalProperties": False,
}

SCHEMAS: dict[str, dict[str, Any]] = {
    "ServiceMonitor": _monitor("ServiceMonitor", "endpoints"),
    "PodMonitor": _monitor("PodMonitor", "podMetricsEndpoints"),
    "InferenceService": _INFERENCE_SERVICE,
}


def validate(obj: dict[str, Any]) -> None:
    """Raises jsonschema.ValidationError naming the offending path."""
    jsonschema.validate(obj, SCHEMAS[obj["kind"]])


def predictor_as_pod(isvc: dict[str, Any]) -> dict[str, Any]:
    """The predictor's PodSpec part as a Pod, for kubernetes-validate."""
    predictor = isvc["spec"]["predictor"]
    spec = {k: v for k, v in predictor.items() if k not in PREDICTOR_COMPONENT_FIELDS}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": isvc["metadata"]["name"]}, "spec": spec}
