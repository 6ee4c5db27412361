"""Generic task: any ONNX model, served as named tensors over the Open Inference Protocol.

A version folder needs only ``model.onnx`` and a manifest with ``"task": "tensor"``, which
``python -m service describe`` writes from the graph. When every input and output has a dynamic first
axis, rows of concurrent requests are coalesced by the micro-batcher along it (rows only share a batch
when their other dimensions agree, so no answer changes). Otherwise each request runs on its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from service.config import Settings
from service.exceptions import ErrorDetail, InvalidInputError
from service.runtime.inference import ModelRunner
from service.runtime.manifest import ManifestError, ModelManifest, TensorSpec
from service.runtime.v2_codec import NUMPY_DTYPES

Tensor = np.ndarray[Any, Any]


def batches_along_first_axis(manifest: ModelManifest) -> bool:
    return all(spec.shape[0] == -1 for spec in [*manifest.inputs, *manifest.outputs])


class TensorHandler:
    task = "tensor"

    def __init__(self, manifest: ModelManifest, runner: ModelRunner, settings: Settings) -> None:
        self.manifest = manifest
        self._runner = runner
        self._batched = batches_along_first_axis(manifest)
        self._max_rows = settings.max_tensor_rows_per_request

    @classmethod
    def from_manifest(
        cls, manifest: ModelManifest, runner: ModelRunner, settings: Settings, version_dir: Path
    ) -> TensorHandler:
        return cls(manifest, runner, settings)

    @property
    def public_parameters(self) -> dict[str, Any]:
        return {**self.manifest.parameters, "batched_along_first_axis": self._batched}

    @property
    def tensor_inputs(self) -> list[TensorSpec]:
        return list(self.manifest.inputs)

    @property
    def tensor_outputs(self) -> list[TensorSpec]:
        return list(self.manifest.outputs)

    def warm_up(self) -> None:
        """One run with zeros (dynamic axes of length 1): proves the graph runs and allocates buffers."""
        feeds = {
            spec.name: np.zeros([1 if d == -1 else d for d in spec.shape], dtype=_dtype(spec))
            for spec in self.manifest.inputs
        }
        if self._batched:
            self._runner.run_sync(feeds)
        else:
            self._runner.run_whole_sync(feeds)

    async def infer_tensors(self, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        if not self._batched:
            return await self._runner.run_direct(inputs)
        rows = {name: array.shape[0] if array.ndim else 0 for name, array in inputs.items()}
        counts = set(rows.values())
        errors: list[ErrorDetail] = []
        if len(counts) != 1:
            errors.append(ErrorDetail(("inputs",), f"inputs must share their first dimension, got {rows}"))
        elif 0 in counts:
            errors.append(ErrorDetail(("inputs",), "the first dimension (rows) must be at least 1"))
        elif max(counts) > self._max_rows:
            errors.append(
                ErrorDetail(("inputs",), f"at most {self._max_rows} rows per request, got {max(counts)}")
            )
        if errors:
            raise InvalidInputError("the inputs do not form a batch of rows", errors)
        return await self._runner.run(inputs)


def _dtype(spec: TensorSpec) -> np.dtype[Any]:
    if spec.datatype == "BYTES":
        raise ManifestError(f"input {spec.name!r}: generic models with BYTES inputs are not supported")
    return NUMPY_DTYPES[spec.datatype]
