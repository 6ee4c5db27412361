"""Model repository extension routes (admin: behind the API keys when keys are set)."""

from __future__ import annotations

from typing import Any, cast

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from service.config import Settings
from service.exceptions import ErrorDetail, InvalidInputError
from service.http.bodies import read_body
from service.http.direct_route import DirectRoute
from service.http.v2_openapi import V2_ERRORS
from service.runtime import repository
from service.runtime.registry import ModelRegistry

router = APIRouter(tags=["Open Inference Protocol (V2): model repository"], route_class=DirectRoute)

_OPTIONAL_BODY = {
    "requestBody": {
        "required": False,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "parameters": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {"unload_dependents": {"type": "boolean"}},
                        }
                    },
                }
            }
        },
    }
}
_INDEX_BODY = {
    "requestBody": {
        "required": False,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"ready": {"type": "boolean"}},
                }
            }
        },
    }
}


def _registry(request: Request) -> ModelRegistry:
    return cast(ModelRegistry, request.app.state.registry)


def _settings(request: Request) -> Settings:
    return cast(Settings, request.app.state.settings)


async def _options(request: Request, allowed: frozenset[str]) -> dict[str, Any]:
    """An optional JSON object body; fields this server does not act on are refused, not ignored."""
    body = await read_body(request, _settings(request).max_body_bytes)
    if not body.strip():
        return {}
    try:
        options = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInputError(f"request body is not valid JSON: {exc}") from exc
    if not isinstance(options, dict):
        raise InvalidInputError("request body must be a JSON object")
    unknown = sorted(set(options) - allowed)
    if unknown:
        message = f"unsupported field(s) {unknown}" + (f"; supported: {sorted(allowed)}" if allowed else "")
        raise InvalidInputError(message, [ErrorDetail(("body",), message)])
    return options


async def _model_options(request: Request, allowed_parameters: frozenset[str]) -> dict[str, Any]:
    """Load/unload bodies: ``{"parameters": {...}}``, as tritonclient sends. Config or file overrides
    are refused: this server loads exactly what the repository folder holds."""
    options = await _options(request, frozenset({"parameters"}))
    parameters = options.get("parameters", {})
    if not isinstance(parameters, dict):
        raise InvalidInputError("'parameters' must be a JSON object")
    unknown = sorted(set(parameters) - allowed_parameters)
    if unknown:
        message = f"parameters {unknown} are not supported (the repository folder is loaded as it is)"
        raise InvalidInputError(message, [ErrorDetail(("body", "parameters"), message)])
    for key in allowed_parameters & set(parameters):
        if type(parameters[key]) is not bool:
            raise InvalidInputError(f"parameters.{key} must be true or false")
    return dict(parameters)


def _json(content: Any) -> Response:
    return Response(orjson.dumps(content), media_type="application/json")


@router.post(
    "/v2/repository/index", summary="Every model version in the repository and its state",
    openapi_extra=_INDEX_BODY, responses=V2_ERRORS,
)  # fmt: skip
async def repository_index(request: Request) -> Response:
    options = await _options(request, frozenset({"ready"}))
    ready_only = options.get("ready", False)
    if type(ready_only) is not bool:
        raise InvalidInputError("'ready' must be true or false")
    return _json(repository.index(_registry(request), _settings(request), ready_only))


@router.post(
    "/v2/repository/models/{name}/load",
    summary="Verify, warm up and swap in the model's versions (on every worker)",
    openapi_extra=_OPTIONAL_BODY, responses=V2_ERRORS,
)  # fmt: skip
async def load_model(name: str, request: Request) -> Response:
    await _model_options(request, frozenset())
    outcome, workers = await repository.load(_registry(request), _settings(request), name)
    return _json(
        {
            "name": name,
            "version": str(outcome.record.version),
            "versions": [str(v) for v in _registry(request).loaded_versions(name)],
            "workers": {"expected": workers.expected, "confirmed": workers.confirmed},
        }
    )


@router.post(
    "/v2/repository/models/{name}/unload",
    summary="Stop taking requests, drain those in flight, free the sessions (on every worker)",
    openapi_extra=_OPTIONAL_BODY, responses=V2_ERRORS,
)  # fmt: skip
async def unload_model(name: str, request: Request) -> Response:
    # No model depends on another here, so unload_dependents changes nothing either way.
    await _model_options(request, frozenset({"unload_dependents"}))
    workers = await repository.unload(_registry(request), _settings(request), name)
    return _json({"name": name, "workers": {"expected": workers.expected, "confirmed": workers.confirmed}})
