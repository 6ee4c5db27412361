"""A model's card (what the playground's Models tab shows) and the report files its manifest lists.

The card is the manifest as training wrote it, less the training history: evaluation against the
baselines, ONNX-vs-PyTorch parity, checksums of every file and the measured serving hint. Report files
(``report.md`` and its pictures, written by ``python -m training report``) are served only when the
manifest lists them, and only of the kinds a report has, so this route can never hand out the weights.
Both live under /v1 and so need an API key when keys are configured.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import anyio.to_thread
from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from starlette.responses import FileResponse, Response

from service.config import Settings
from service.exceptions import ErrorDetail, ModelNotFoundError
from service.http.schemas_v1 import ErrorResponse
from service.runtime.registry import ModelRegistry

REPORT_TYPES = {".md": "text/markdown; charset=utf-8", ".png": "image/png", ".svg": "image/svg+xml"}

router = APIRouter()


class FileOut(BaseModel):
    name: str
    sha256: str
    bytes: int
    url: str | None = Field(description="Where to fetch it, for report files; null for the others.")


class ModelCard(BaseModel):
    name: str
    version: int
    task: str
    description: str | None
    provider: str | None = Field(description="onnxruntime execution provider in use.")
    model_sha256: str | None
    parameters: dict[str, Any]
    evaluation: dict[str, Any]
    parity: dict[str, Any]
    serving: dict[str, Any] = Field(description="Measured serving hint (preferred batch size, rows/s).")
    training: dict[str, Any] = Field(description="Training facts (data, seed, libraries), without history.")
    files: list[FileOut]
    report: str | None = Field(description="URL of report.md when the manifest lists one.")


_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "Unknown model, version or file."}
}
_UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "Missing or invalid API key."}
}


def _file_url(name: str, version: int, filename: str) -> str:
    return f"/v1/models/{name}/versions/{version}/files/{filename}"


def _version_dir(request: Request, name: str, version: int) -> Path:
    settings = cast(Settings, request.app.state.settings)
    return settings.model_repository / name / str(version)


@router.get(
    "/v1/models/{name}/card",
    response_model=ModelCard,
    responses={**_UNAUTHORIZED, **_NOT_FOUND},
    summary="Model card: evaluation, parity, checksums, serving hint, report links",
)
async def model_card(name: str, request: Request) -> ModelCard:
    record = cast(ModelRegistry, request.app.state.registry).get(name)
    if record.version is None or record.manifest is None:
        raise ModelNotFoundError(
            f"model {name!r} has no loaded version", [ErrorDetail(("path", "name"), "not loaded")]
        )
    path = _version_dir(request, name, record.version) / "model.json"
    raw: dict[str, Any] = json.loads(await anyio.to_thread.run_sync(path.read_text))
    files = [
        FileOut(
            name=filename,
            sha256=entry["sha256"],
            bytes=entry["bytes"],
            url=_file_url(name, record.version, filename) if Path(filename).suffix in REPORT_TYPES else None,
        )
        for filename, entry in sorted(raw.get("files", {}).items())
    ]
    training = {k: v for k, v in raw.get("training", {}).items() if k != "history"}
    return ModelCard(
        name=name,
        version=record.version,
        task=record.manifest.task,
        description=record.manifest.description,
        provider=record.provider,
        model_sha256=record.model_sha256,
        parameters=record.manifest.parameters,
        evaluation=raw.get("evaluation", {}),
        parity=raw.get("parity", {}),
        serving=raw.get("serving", {}),
        training=training,
        files=files,
        report=_file_url(name, record.version, "report.md") if "report.md" in raw.get("files", {}) else None,
    )


@router.get(
    "/v1/models/{name}/versions/{version}/files/{filename}",
    responses={
        200: {"content": {t.split(";")[0]: {} for t in REPORT_TYPES.values()}, "description": "The file."},
        **_UNAUTHORIZED,
        **_NOT_FOUND,
    },
    response_class=Response,
    summary="A report file (report.md or a picture) listed in a loaded version's manifest",
)
async def model_file(name: str, version: int, filename: str, request: Request) -> Response:
    record = cast(ModelRegistry, request.app.state.registry).get_version(name, version)
    suffix = Path(filename).suffix
    if record.manifest is None or filename not in record.manifest.files or suffix not in REPORT_TYPES:
        raise ModelNotFoundError(
            f"model {name!r} version {version} lists no report file {filename!r}",
            [ErrorDetail(("path", "filename"), "not a report file listed in the manifest")],
        )
    # The manifest's filenames were checked at load to stay inside the version folder.
    return FileResponse(_version_dir(request, name, version) / filename, media_type=REPORT_TYPES[suffix])
