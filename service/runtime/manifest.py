"""The manifest (``model.json``) as typed data, and verification of the files it lists.

The manifest is the only contract between training and serving, so parsing is strict where the service
relies on a field (tensor specs, checksums) and tolerant of new top-level keys training may add later.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

MANIFEST_FILENAME = "model.json"
MODEL_FILENAME = "model.onnx"
# Where training/onnx_slim.py moves lookup tables so that ORT maps them instead of copying them.
EXTERNAL_DATA_FILENAME = MODEL_FILENAME + ".data"
_HASH_CHUNK_BYTES = 1024 * 1024

# KServe V2 / Triton datatype names. BYTES is a tensor of byte strings (ONNX ``tensor(string)``).
Datatype = Literal[
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
    "FP16", "FP32", "FP64", "BYTES",
]  # fmt: skip

# The element type onnxruntime reports for each manifest datatype (KServe V2 names on the left).
ORT_ELEMENT_TYPES: dict[str, str] = {
    "BOOL": "tensor(bool)",
    "UINT8": "tensor(uint8)",
    "UINT16": "tensor(uint16)",
    "UINT32": "tensor(uint32)",
    "UINT64": "tensor(uint64)",
    "INT8": "tensor(int8)",
    "INT16": "tensor(int16)",
    "INT32": "tensor(int32)",
    "INT64": "tensor(int64)",
    "FP16": "tensor(float16)",
    "FP32": "tensor(float)",
    "FP64": "tensor(double)",
    "BYTES": "tensor(string)",
}


class ManifestError(Exception):
    """The manifest is unreadable, malformed, or does not match the files next to it."""


class TensorSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    name: Annotated[str, Field(min_length=1)]
    datatype: Datatype
    shape: Annotated[list[Annotated[int, Field(ge=-1)]], Field(min_length=1)]

    @field_validator("shape")
    @classmethod
    def _no_zero_dims(cls, shape: list[int]) -> list[int]:
        # 0 is never a meaningful dimension here; it is almost always a typo for -1.
        if 0 in shape:
            raise ValueError("dimensions must be positive or -1 (dynamic), not 0")
        return shape


class FileEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    bytes: Annotated[int, Field(ge=0)]


class ServingHints(BaseModel):
    """How to run the model cheaply, measured by training (``training/batch_profile.py``)."""

    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)

    # Rows per session.run with the highest rows/s, measured on ``provider``.
    preferred_batch_size: Annotated[int, Field(gt=0)] | None = None
    provider: str | None = None

    def rows_per_run(self, provider: str) -> int | None:
        """The measured best, if it was measured on this provider (a GPU's best batch is another)."""
        return self.preferred_batch_size if self.provider == provider else None


class ModelManifest(BaseModel):
    # Unknown top-level keys are ignored so training can add provenance without breaking serving.
    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)

    schema_version: Literal[1]
    name: Annotated[str, Field(min_length=1)]
    version: Annotated[int, Field(ge=0)]
    task: Annotated[str, Field(min_length=1)]
    description: str | None = None
    inputs: Annotated[list[TensorSpec], Field(min_length=1)]
    outputs: Annotated[list[TensorSpec], Field(min_length=1)]
    # Task-specific; each task handler parses and validates its own parameters model.
    parameters: dict[str, Any]
    training: dict[str, Any] = Field(default_factory=dict)
    evaluation: dict[str, Any] = Field(default_factory=dict)
    parity: dict[str, Any] = Field(default_factory=dict)
    serving: ServingHints = Field(default_factory=ServingHints)
    files: dict[str, FileEntry]

    @field_validator("inputs", "outputs")
    @classmethod
    def _unique_names(cls, specs: list[TensorSpec]) -> list[TensorSpec]:
        names = [spec.name for spec in specs]
        if len(set(names)) != len(names):
            raise ValueError(f"tensor names must be unique, got {names}")
        return specs

    @field_validator("files")
    @classmethod
    def _safe_filenames(cls, files: dict[str, FileEntry]) -> dict[str, FileEntry]:
        # Filenames are joined onto the version folder; refuse anything that could escape it.
        for filename in files:
            if not filename or "/" in filename or "\\" in filename or filename in {".", ".."}:
                raise ValueError(f"file name {filename!r} must be a plain name inside the version folder")
        if MODEL_FILENAME not in files:
            raise ValueError(f"must list {MODEL_FILENAME}")
        if MANIFEST_FILENAME in files:
            raise ValueError(f"must not list {MANIFEST_FILENAME} (a file cannot contain its own checksum)")
        return files


def load_manifest(version_dir: Path) -> ModelManifest:
    """Read and validate ``model.json``; every problem becomes one readable ManifestError."""
    path = version_dir / MANIFEST_FILENAME
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ManifestError(f"{path}: missing") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"{path}: unreadable: {exc}") from exc
    try:
        return ModelManifest.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()
        )
        raise ManifestError(f"{path}: invalid manifest: {problems}") from exc


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def verify_files(version_dir: Path, manifest: ModelManifest) -> None:
    """Fail unless every listed file exists with the recorded size and sha256.

    ``model.onnx.data`` (weights ORT maps from beside the graph) must be listed when present: ORT
    reads it whether the manifest names it or not.
    """
    if (version_dir / EXTERNAL_DATA_FILENAME).exists() and EXTERNAL_DATA_FILENAME not in manifest.files:
        raise ManifestError(
            f"{version_dir / EXTERNAL_DATA_FILENAME}: the graph's weights file is not listed in "
            f"{MANIFEST_FILENAME}, so its checksum cannot be verified"
        )
    for filename, entry in manifest.files.items():
        path = version_dir / filename
        if not path.is_file():
            raise ManifestError(f"{path}: listed in {MANIFEST_FILENAME} but missing")
        size = path.stat().st_size
        if size != entry.bytes:
            raise ManifestError(f"{path}: size mismatch: expected {entry.bytes} bytes, found {size}")
        actual = sha256_of(path)
        if actual != entry.sha256:
            raise ManifestError(f"{path}: sha256 mismatch: expected {entry.sha256}, found {actual}")


ParamsT = TypeVar("ParamsT", bound=BaseModel)


def task_parameters(model: type[ParamsT], manifest: ModelManifest) -> ParamsT:
    """Validate the manifest's task parameters against a task's model; a mismatch refuses the version."""
    try:
        return model.model_validate(manifest.parameters)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '<root>'}: {e['msg']}" for e in exc.errors())
        raise ManifestError(f"invalid {manifest.task} parameters: {problems}") from exc
