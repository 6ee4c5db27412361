"""Example requests for the OpenAPI document, so "Try it out" in /docs sends something that works.

The forecast example is a real M4 Hourly series (the playground's asset, static/examples/m4_hourly.json,
written by ``python -m training.playground_examples``): a made-up series shorter than the model's
min_context_length would only demonstrate a 422.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi import FastAPI

EXAMPLES_FILE = Path(__file__).parent / "static" / "examples" / "m4_hourly.json"


def _first_m4_series() -> dict[str, Any]:
    series = json.loads(EXAMPLES_FILE.read_text())["series"][0]
    return {"id": series["id"], "values": series["history"]}


FORECAST_REQUEST: dict[str, Any] = {
    "model": "m4-hourly",
    "horizon": 48,
    "quantiles": [0.1, 0.5, 0.9],
    "series": [_first_m4_series()],
}
SENTIMENT_REQUEST: dict[str, Any] = {
    "model": "sst2-bilstm",
    "texts": [
        "A gripping, beautifully acted film.",
        "Two hours of my life I will never get back.",
    ],
}

MNIST_FILE = Path(__file__).parent / "static" / "examples" / "mnist_digit.json"
GENERATE_REQUEST: dict[str, Any] = {
    "model": "shakespeare-char",
    "prompt": "ROMEO:\n",
    "max_new_tokens": 200,
    "temperature": 0.8,
    "seed": 42,
}
COMPLETION_REQUEST: dict[str, Any] = {
    "model": "shakespeare-char",
    "prompt": "ROMEO:\n",
    "max_tokens": 64,
    "temperature": 0.8,
}
CLASSIFY_REQUEST: dict[str, Any] = {"sequences": [json.loads(MNIST_FILE.read_text())["rows"]]}
# Request bodies of operations whose schemas carry no example of their own.
BODY_EXAMPLES: dict[tuple[str, str], dict[str, Any]] = {
    ("/v1/generate", "post"): GENERATE_REQUEST,
    ("/v1/completions", "post"): COMPLETION_REQUEST,
    ("/v1/classify", "post"): CLASSIFY_REQUEST,
}
# Path parameters, by name: a served model, its committed version and its report.
PATH_EXAMPLES: dict[str, Any] = {"name": "m4-hourly", "version": 1, "filename": "report.md"}
# Loading and unloading are left without a model name: an example there would unload a served model.
# V2 inference documents its own body (service/http/v2_openapi.py) and names no model for it.
_NO_PATH_EXAMPLE = (
    "/v2/repository/",
    "/v2/models/{name}/infer",
    "/v2/models/{name}/versions/{version}/infer",
)


def add_examples(schema: dict[str, Any]) -> dict[str, Any]:
    """Fill in examples that an operation's own schema lacks, in place; never replace one."""
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            if not isinstance(operation, dict):
                continue
            body = BODY_EXAMPLES.get((path, method))
            content = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if (
                body is not None
                and content is not None
                and "example" not in content
                and "examples" not in content
            ):
                content["example"] = body
            if path.startswith(_NO_PATH_EXAMPLE):
                continue
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "path" and parameter["name"] in PATH_EXAMPLES:
                    parameter.setdefault("example", PATH_EXAMPLES[parameter["name"]])
    return schema


def install_examples(app: FastAPI) -> None:
    """Wrap ``app.openapi`` (after any other wrapper) so the document carries the examples above."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        return add_examples(build())

    app.openapi = openapi  # type: ignore[method-assign]
