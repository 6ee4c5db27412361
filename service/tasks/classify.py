"""Sequence classification: a [T][F] array of numbers per sequence in, a label per sequence out. No HTTP here.

Generic over any manifest with ``task: "classify"``: one FP32 input ``[B, T, F]`` and one FP32
probabilities output ``[B, len(labels)]``. The manifest says T, F and the value range the graph
expects (MNIST rows: 28 x 28 raw pixels in 0..255, scaled inside the graph), and every value is
checked against them, by position, before anything runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from service.config import Settings
from service.drift.loader import drift_observer
from service.drift.monitor import NO_DRIFT, DriftObserver
from service.exceptions import ErrorDetail, InvalidInputError
from service.runtime.inference import ModelRunner
from service.runtime.manifest import ManifestError, ModelManifest, TensorSpec, task_parameters

# Reported per request at most; a hostile body can hold a million bad values.
MAX_REPORTED_ERRORS = 20


class ClassifyParameters(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)

    labels: Annotated[list[str], Field(min_length=2)]
    sequence_length: Annotated[int, Field(gt=0)]
    feature_size: Annotated[int, Field(gt=0)]
    value_min: float
    value_max: float


@dataclass(frozen=True)
class ClassifyResult:
    label: str
    score: float
    probabilities: dict[str, float]


class ClassifyHandler:
    task = "classify"
    drift: DriftObserver = NO_DRIFT

    def __init__(
        self, manifest: ModelManifest, params: ClassifyParameters, runner: ModelRunner, settings: Settings
    ) -> None:
        self.manifest = manifest
        self.params = params
        self._runner = runner
        self._input = manifest.inputs[0]
        self._output = manifest.outputs[0]
        self._max_sequences = settings.max_sequences_per_request

    @classmethod
    def from_manifest(
        cls, manifest: ModelManifest, runner: ModelRunner, settings: Settings, version_dir: Path
    ) -> ClassifyHandler:
        params = task_parameters(ClassifyParameters, manifest)
        shape = [-1, params.sequence_length, params.feature_size]
        inputs, outputs = manifest.inputs, manifest.outputs
        if len(inputs) != 1 or inputs[0].datatype != "FP32" or inputs[0].shape not in (shape, [-1, -1, -1]):
            raise ManifestError(f"classify input must be one FP32 tensor {shape}")
        if len(outputs) != 1 or outputs[0].datatype != "FP32" or outputs[0].shape[1:] != [len(params.labels)]:
            raise ManifestError(f"classify output must be FP32 [B, {len(params.labels)}] probabilities")
        if not params.value_min < params.value_max:
            raise ManifestError("classify parameters: value_min must be below value_max")
        handler = cls(manifest, params, runner, settings)
        handler.drift = drift_observer(manifest, version_dir, settings)
        return handler

    @property
    def public_parameters(self) -> dict[str, Any]:
        return self.params.model_dump()

    def warm_up(self) -> None:
        p = self.params
        batch = np.full((2, p.sequence_length, p.feature_size), p.value_min, dtype=np.float32)
        batch[1] = p.value_max
        probs = self._runner.run_sync({self._input.name: batch})[self._output.name]
        if not np.isfinite(probs).all():
            raise ManifestError("warm-up produced non-finite probabilities")

    async def classify(self, sequences: Sequence[Sequence[Sequence[float]]]) -> list[ClassifyResult]:
        array = self.to_array(sequences, ("sequences",))
        probs = (await self._runner.run({self._input.name: array}))[self._output.name]
        self.drift.observe(array, probs)  # queued only; features are computed off the request path
        labels = self.params.labels
        results = []
        for row in probs.astype(np.float64):
            best = int(row.argmax())
            results.append(
                ClassifyResult(
                    labels[best], float(row[best]), dict(zip(labels, map(float, row), strict=True))
                )
            )
        return results

    def to_array(self, sequences: Sequence[Sequence[Sequence[float]]], loc: tuple[str | int, ...]) -> Any:
        """Nested lists as sent -> float32 [B, T, F], or InvalidInputError naming each bad position."""
        p = self.params
        errors: list[ErrorDetail] = []
        if not sequences:
            errors.append(ErrorDetail(loc, "at least one sequence is required"))
        elif len(sequences) > self._max_sequences:
            errors.append(ErrorDetail(loc, f"at most {self._max_sequences} sequences, got {len(sequences)}"))
        for i, seq in enumerate(sequences):
            if len(seq) != p.sequence_length:
                errors.append(
                    ErrorDetail((*loc, i), f"{len(seq)} steps; the model needs {p.sequence_length}")
                )
                continue
            for t, step in enumerate(seq):
                if len(step) != p.feature_size:
                    errors.append(
                        ErrorDetail((*loc, i, t), f"{len(step)} features; the model needs {p.feature_size}")
                    )
        if errors:
            raise InvalidInputError("the sequences do not fit this model", errors[:MAX_REPORTED_ERRORS])
        array = np.asarray(sequences, dtype=np.float64)
        self._check_values(array, loc)
        return array.astype(np.float32)

    def check_tensor(self, array: np.ndarray[Any, Any], loc: tuple[str | int, ...]) -> None:
        """The V2 path: dims and values of an already-typed [B, T, F] tensor."""
        p = self.params
        want = (p.sequence_length, p.feature_size)
        if array.ndim != 3 or tuple(array.shape[1:]) != want or array.shape[0] == 0:
            raise InvalidInputError(
                f"shape {list(array.shape)}; the model needs [B, {want[0]}, {want[1]}] with B >= 1",
                [ErrorDetail(loc, f"shape must be [B, {want[0]}, {want[1]}]")],
            )
        self._check_values(array, loc)

    def _check_values(self, array: np.ndarray[Any, Any], loc: tuple[str | int, ...]) -> None:
        p = self.params
        finite = np.isfinite(array)
        bad = (
            ~finite
            | (np.where(finite, array, p.value_min) < p.value_min)
            | (np.where(finite, array, p.value_max) > p.value_max)
        )
        if not bad.any():
            return
        details = []
        for i, t, f in np.argwhere(bad)[:MAX_REPORTED_ERRORS]:
            value = float(array[i, t, f])
            why = (
                "not a finite number" if not np.isfinite(value) else f"outside [{p.value_min}, {p.value_max}]"
            )
            details.append(ErrorDetail((*loc, int(i), int(t), int(f)), f"{value!r} is {why}"))
        raise InvalidInputError(f"{int(bad.sum())} value(s) the model cannot take", details)

    # --- TensorTask: the V2 view ---

    @property
    def tensor_inputs(self) -> list[TensorSpec]:
        return [self._input]

    @property
    def tensor_outputs(self) -> list[TensorSpec]:
        return [self._output]

    async def infer_tensors(
        self, inputs: Mapping[str, np.ndarray[Any, Any]]
    ) -> dict[str, np.ndarray[Any, Any]]:
        array = inputs[self._input.name]
        self.check_tensor(array, (self._input.name,))
        outputs = await self._runner.run({self._input.name: np.ascontiguousarray(array, dtype=np.float32)})
        self.drift.observe(array, outputs[self._output.name])
        return {self._output.name: outputs[self._output.name]}
