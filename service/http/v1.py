"""HTTP routes: translate requests to domain calls and domain results to responses, nothing more."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, TypeVar, cast

from fastapi import APIRouter, Request
from starlette.responses import Response

from service.config import Settings
from service.exceptions import ErrorDetail, InferenceError, NotReadyError
from service.http.fast_json import FastJSONRoute, fast_body
from service.http.responses import OrjsonResponse
from service.http.schemas_v1 import (
    ErrorResponse,
    ForecastRequest,
    ForecastResponse,
    Health,
    ModelInfo,
    ModelList,
    Readiness,
    ReloadChange,
    ReloadResponse,
    ReloadWorkers,
    SentimentRequest,
    SentimentResponse,
    TensorSpecOut,
)
from service.http.timeouts import within_timeout
from service.runtime import repository
from service.runtime.registry import ModelRecord, ModelRegistry
from service.tasks.forecast import ForecastHandler, ForecastQuery, SeriesForecast, SeriesInput
from service.tasks.sentiment import SentimentHandler

router = APIRouter(route_class=FastJSONRoute)
T = TypeVar("T")

_ERROR_DESCRIPTIONS = {
    400: "Malformed JSON body.",
    401: "Missing or invalid API key (only when api_keys is set).",
    404: "Unknown model.",
    409: "Hot reload refused: the newest version fails verification; the old version keeps serving.",
    413: "Request body larger than max_body_bytes.",
    415: "Body not sent as application/json.",
    422: "Request does not fit the schema or the model (loc points at the field).",
    503: "Model or service not ready.",
    504: "Inference exceeded request_timeout_seconds.",
}


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorResponse, "description": _ERROR_DESCRIPTIONS[code]} for code in codes}


# Plain functions of the request rather than FastAPI dependencies: resolving a Depends costs FastAPI
# tens of microseconds per request (cache keys, scope checks), a measurable share of a forecast.
def _registry(request: Request) -> ModelRegistry:
    return cast(ModelRegistry, request.app.state.registry)


def _settings(request: Request) -> Settings:
    return cast(Settings, request.app.state.settings)


@router.post(
    "/v1/forecast",
    response_model=ForecastResponse,
    response_class=OrjsonResponse,
    responses=_errors(400, 401, 413, 415, 422, 503, 504),
    summary="Quantile forecasts for one or more series",
)
@fast_body(ForecastRequest)
async def forecast(body: ForecastRequest, request: Request) -> Response:
    record = _registry(request).resolve(body.model, "forecast")
    handler = record.handler
    if not isinstance(handler, ForecastHandler) or record.version is None:
        raise InferenceError(f"model {record.name!r} has no forecast handler")
    query = forecast_query(body)
    # Only the handler's coroutine keeps the query: it drops the series' float lists once they are
    # float32 rows, so they do not wait in the batcher's queue.
    pending = handler.forecast(query)
    del body, query
    forecasts = await _within_timeout(pending, _settings(request), record.name)
    return OrjsonResponse(forecast_payload(record.name, record.version, forecasts))


def forecast_query(body: ForecastRequest) -> ForecastQuery:
    """The handler's query for a /v1/forecast body, as the endpoint and the native lane build it."""
    return ForecastQuery(
        series=[SeriesInput(values=s.values, id=s.id) for s in body.series],
        horizon=body.horizon,
        quantiles=body.quantiles,
    )


def forecast_payload(name: str, version: int, forecasts: list[SeriesForecast]) -> dict[str, Any]:
    """The /v1/forecast answer (ForecastResponse), as the endpoint and the native lane send it."""
    return {
        "model": {"name": name, "version": version},
        "forecasts": [
            {
                "id": f.id,
                "point": f.point,
                "quantiles": f.quantiles,
                "context_length_used": f.context_length_used,
            }
            for f in forecasts
        ],
    }


@router.post(
    "/v1/sentiment",
    response_model=SentimentResponse,
    response_class=OrjsonResponse,
    responses=_errors(400, 401, 413, 415, 422, 503, 504),
    summary="Sentiment label and probabilities for one or more texts",
)
@fast_body(SentimentRequest)
async def sentiment(body: SentimentRequest, request: Request) -> Response:
    record = _registry(request).resolve(body.model, "sentiment")
    handler = record.handler
    if not isinstance(handler, SentimentHandler) or record.version is None:
        raise InferenceError(f"model {record.name!r} has no sentiment handler")
    results = await _within_timeout(handler.classify(body.texts), _settings(request), record.name)
    return OrjsonResponse(
        {
            "model": {"name": record.name, "version": record.version},
            "results": [
                {
                    "label": r.label,
                    "score": r.score,
                    "probabilities": r.probabilities,
                    "truncated": r.truncated,
                    "tokens_used": r.tokens_used,
                }
                for r in results
            ],
        }
    )


async def _within_timeout(call: Awaitable[T], settings: Settings, model: str) -> T:
    return await within_timeout(call, settings.request_timeout_seconds, model)


@router.get(
    "/v1/models",
    response_model=ModelList,
    responses=_errors(401),
    summary="Every discovered model and its state",
)
async def list_models(request: Request) -> ModelList:
    registry = _registry(request)
    return ModelList(models=[_model_info(r, registry) for r in registry.snapshot().models.values()])


@router.get("/v1/models/{name}", response_model=ModelInfo, responses=_errors(401, 404), summary="One model")
async def get_model(name: str, request: Request) -> ModelInfo:
    registry = _registry(request)
    return _model_info(registry.get(name), registry)


@router.post(
    "/v1/models/{name}/reload",
    response_model=ReloadResponse,
    responses=_errors(401, 404, 409),
    summary="Hot reload: verify the newest eligible version and swap it in",
)
async def reload_model(name: str, request: Request) -> ReloadResponse:
    # The same operation as the V2 repository load: reload here, then on every worker (bounded wait).
    outcome, acks = await repository.load(_registry(request), _settings(request), name)
    record, previous = outcome.record, outcome.previous
    assert record.version is not None  # a swapped-in record is always a loaded version
    workers = ReloadWorkers(expected=acks.expected, confirmed=acks.confirmed)
    old_version = previous.version if previous is not None and previous.state == "ready" else None
    old_sha = previous.model_sha256 if previous is not None else None
    return ReloadResponse(
        model=_model_info(record, _registry(request)),
        change=ReloadChange(
            previous_version=old_version,
            version=record.version,
            previous_model_sha256=old_sha,
            model_sha256=record.model_sha256,
            changed=(old_version, old_sha) != (record.version, record.model_sha256),
        ),
        workers=workers,
    )


@router.get("/healthz", response_model=Health, summary="Liveness")
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz", response_model=Readiness, responses=_errors(503), summary="Readiness: all models ready"
)
async def readyz(request: Request) -> Readiness:
    if request.app.state.drain.draining:
        # Shutting down: still serving, but a load balancer should route new requests elsewhere.
        raise NotReadyError("draining: shutting down", [ErrorDetail(("server",), "draining")])
    registry = _registry(request)
    not_ready = registry.not_ready()
    if not_ready:
        details = [ErrorDetail(("models", name), reason) for name, reason in not_ready.items()]
        raise NotReadyError(f"{len(not_ready)} model(s) not ready", details)
    return Readiness(status="ready", models=list(registry.snapshot().models))


def _model_info(record: ModelRecord, registry: ModelRegistry | None = None) -> ModelInfo:
    manifest = record.manifest
    parameters = (
        record.handler.public_parameters if record.handler else manifest.parameters if manifest else None
    )
    return ModelInfo(
        name=record.name,
        version=record.version,
        task=record.task,
        state=record.state,
        error=record.error,
        versions=registry.loaded_versions(record.name) if registry is not None else [],
        provider=record.provider,
        model_sha256=record.model_sha256,
        inputs=[TensorSpecOut(**s.model_dump()) for s in manifest.inputs] if manifest else None,
        outputs=[TensorSpecOut(**s.model_dump()) for s in manifest.outputs] if manifest else None,
        parameters=parameters,
        evaluation=manifest.evaluation if manifest else None,
        last_reload_error=record.last_reload_error,
    )
