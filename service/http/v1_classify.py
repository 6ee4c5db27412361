"""HTTP route of sequence classification: /v1/classify (through the model's micro-batcher)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from service.exceptions import InferenceError
from service.http.fast_json import FastJSONRoute
from service.http.responses import OrjsonResponse
from service.http.schemas_classify import ClassifyRequest, ClassifyResponse
from service.http.v1 import _errors, _registry, _settings, _within_timeout
from service.tasks.classify import ClassifyHandler

router = APIRouter(route_class=FastJSONRoute)


@router.post(
    "/v1/classify",
    response_model=ClassifyResponse,
    response_class=OrjsonResponse,
    responses=_errors(400, 401, 413, 415, 422, 503, 504),
    summary="A label and probabilities for each sequence of feature vectors",
)
async def classify(body: ClassifyRequest, request: Request) -> Response:
    record = _registry(request).resolve(body.model, "classify")
    handler = record.handler
    if not isinstance(handler, ClassifyHandler) or record.version is None:
        raise InferenceError(f"model {record.name!r} has no classify handler")
    results = await _within_timeout(handler.classify(body.sequences), _settings(request), record.name)
    return OrjsonResponse(
        {
            "model": {"name": record.name, "version": record.version},
            "results": [
                {"label": r.label, "score": r.score, "probabilities": r.probabilities} for r in results
            ],
        }
    )
