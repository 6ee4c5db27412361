"""OpenAPI text for the V2 routes, which read their bodies themselves (JSON or binary tensors)."""

from __future__ import annotations

from typing import Any

DATATYPES = [
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
    "FP16", "FP32", "FP64", "BYTES",
]  # fmt: skip

_TENSOR = {
    "type": "object",
    "required": ["name", "shape", "datatype"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
        "datatype": {"type": "string", "enum": DATATYPES},
        "parameters": {
            "type": "object",
            "properties": {"binary_data_size": {"type": "integer", "minimum": 0}},
            "additionalProperties": False,
        },
        "data": {"type": "array", "description": "Row-major elements, flat or nested."},
    },
}

_REQUEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["inputs"],
    "additionalProperties": False,
    "properties": {
        "id": {"type": "string"},
        "parameters": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "binary_data_output": {"type": "boolean"},
                "timeout": {"type": "integer", "minimum": 1, "description": "microseconds"},
            },
        },
        "inputs": {"type": "array", "minItems": 1, "items": _TENSOR},
        "outputs": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name"],
                "additionalProperties": False,
                "properties": {
                    "name": {"type": "string"},
                    "parameters": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {"binary_data": {"type": "boolean"}},
                    },
                },
            },
        },
    },
}

_EXAMPLE = {
    "id": "42",
    "inputs": [{"name": "text", "shape": [2], "datatype": "BYTES", "data": ["a gripping film .", "dull ."]}],
    "outputs": [{"name": "label"}, {"name": "probabilities"}],
}

INFER_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": (
            "A JSON inference request, or (binary tensor data extension) a JSON header of "
            "Inference-Header-Content-Length bytes followed by the raw tensors."
        ),
        "content": {
            "application/json": {"schema": _REQUEST_SCHEMA, "example": _EXAMPLE},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}

_ERROR = {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}
_DESCRIPTIONS = {
    400: "Bad request: malformed body or tensors that do not fit the model.",
    401: "Missing or invalid API key (only when api_keys is set).",
    404: "Unknown model, or a version that is not loaded.",
    413: "Request body larger than max_body_bytes.",
    503: "Model not ready, or overloaded (with Retry-After).",
    504: "Inference exceeded the request timeout.",
}
V2_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"description": text, "content": {"application/json": {"schema": _ERROR}}}
    for code, text in _DESCRIPTIONS.items()
}
