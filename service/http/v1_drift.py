"""``GET /v1/models/{name}/drift``: this worker's drift scores, its window and the reference, side by side."""

from __future__ import annotations

import anyio.to_thread
from fastapi import APIRouter, Request
from starlette.responses import Response

from service.drift.monitor import DriftMonitor, NoDrift
from service.exceptions import ModelUnavailableError
from service.http.fast_json import FastJSONRoute
from service.http.responses import OrjsonResponse
from service.http.v1 import _errors, _registry

router = APIRouter(route_class=FastJSONRoute)


@router.get(
    "/v1/models/{name}/drift",
    response_class=OrjsonResponse,
    responses=_errors(401, 404, 503),
    summary="Input and output drift (PSI per feature) of the served version against its training profile",
)
async def model_drift(name: str, request: Request) -> Response:
    record = _registry(request).get(name)
    if record.state != "ready":
        raise ModelUnavailableError(f"model {name!r} is not ready: {record.error}")
    body: dict[str, object] = {"model": {"name": record.name, "version": record.version}}
    drift = getattr(record.handler, "drift", None)
    if isinstance(drift, DriftMonitor):
        # Binning the window takes a fraction of a millisecond; still, keep it off the event loop.
        body.update(await anyio.to_thread.run_sync(drift.report))
    else:
        reason = (
            drift.reason
            if isinstance(drift, NoDrift)
            else f"the {record.task!r} handler does not feed drift monitoring"
        )
        body.update({"enabled": False, "reason": reason})
    return OrjsonResponse(body)
