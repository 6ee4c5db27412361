"""Forecast task: validation against the manifest, pre-processing, and result assembly. No HTTP here."""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Self

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from service import metrics
from service.config import Settings
from service.drift.loader import drift_observer
from service.drift.monitor import NO_DRIFT, DriftObserver
from service.exceptions import ErrorDetail, InvalidInputError, Loc
from service.runtime.inference import ModelRunner
from service.runtime.manifest import ManifestError, ModelManifest, TensorSpec, task_parameters

Float32Array = np.ndarray[Any, np.dtype[np.float32]]
Tensor = np.ndarray[Any, Any]


def _v1_row_loc(index: int) -> Loc:
    return ("series", index, "values")


class ForecastParameters(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)

    horizon: Annotated[int, Field(gt=0)]
    context_length: Annotated[int, Field(gt=0)]
    min_context_length: Annotated[int, Field(gt=0)]
    quantiles: Annotated[list[float], Field(min_length=1)]
    season_length: Annotated[int, Field(gt=0)]

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.min_context_length > self.context_length:
            raise ValueError("min_context_length must not exceed context_length")
        qs = self.quantiles
        if any(not 0.0 < q < 1.0 for q in qs) or any(a >= b for a, b in itertools.pairwise(qs)):
            raise ValueError(f"quantiles must be strictly increasing inside (0, 1), got {qs}")
        if 0.5 not in qs:
            raise ValueError("quantiles must include 0.5 (the point forecast)")
        return self


def _float64_array(values: Sequence[float]) -> np.ndarray[Any, np.dtype[np.float64]]:
    if isinstance(values, np.ndarray):
        return np.asarray(values, dtype=np.float64)
    # A JSON list of floats: fromiter converts it about twice as fast as asarray's generic sequence path.
    return np.fromiter(values, dtype=np.float64, count=len(values))


def quantile_key(q: float) -> str:
    # Python's shortest round-trip repr matches how the manifest writes them: 0.05 -> "0.05".
    return repr(float(q))


@dataclass(frozen=True)
class SeriesInput:
    values: Sequence[float]
    id: str | None = None


@dataclass(frozen=True)
class ForecastQuery:
    series: Sequence[SeriesInput]
    horizon: int | None = None
    quantiles: Sequence[float] | None = None


@dataclass(frozen=True, slots=True)
class PreparedForecast:
    """A checked forecast request: its series' ids, their float32 rows and what to answer."""

    ids: list[str | None]
    rows: list[Float32Array]
    horizon: int
    keys_and_indices: list[tuple[str, int]]


@dataclass(frozen=True)
class SeriesForecast:
    id: str | None
    point: Float32Array
    quantiles: dict[str, Float32Array]
    context_length_used: int


class ForecastHandler:
    task = "forecast"
    drift: DriftObserver = NO_DRIFT

    def __init__(
        self, manifest: ModelManifest, params: ForecastParameters, runner: ModelRunner, settings: Settings
    ) -> None:
        self.manifest = manifest
        self.params = params
        self._input_lengths = metrics.register_forecast_model(manifest.name)
        self._runner = runner
        self._input_name = manifest.inputs[0].name
        self._output_name = manifest.outputs[0].name
        self._max_series = settings.max_series_per_request
        self._max_length = settings.max_series_length
        self._median_index = params.quantiles.index(0.5)
        # Every quantile's response key, computed once: most requests ask for all of them.
        self._all_quantiles = [(quantile_key(q), i) for i, q in enumerate(params.quantiles)]

    @classmethod
    def from_manifest(
        cls, manifest: ModelManifest, runner: ModelRunner, settings: Settings, version_dir: Path
    ) -> ForecastHandler:
        params = task_parameters(ForecastParameters, manifest)
        if len(manifest.inputs) != 1 or len(manifest.outputs) != 1:
            raise ManifestError("a forecast model must have exactly one input and one output")
        values, quantiles = manifest.inputs[0], manifest.outputs[0]
        if values.datatype != "FP32" or len(values.shape) != 2:
            raise ManifestError(
                f"forecast input must be FP32 [batch, time], got {values.datatype} {values.shape}"
            )
        expected = [-1, params.horizon, len(params.quantiles)]
        if (
            quantiles.datatype != "FP32"
            or len(quantiles.shape) != 3
            or any(got not in (-1, want) for got, want in zip(quantiles.shape[1:], expected[1:], strict=True))
        ):
            raise ManifestError(
                f"forecast output must be FP32 {expected} (batch, horizon, quantiles), "
                f"got {quantiles.datatype} {quantiles.shape}"
            )
        handler = cls(manifest, params, runner, settings)
        handler.drift = drift_observer(manifest, version_dir, settings)
        return handler

    @property
    def public_parameters(self) -> dict[str, Any]:
        return self.params.model_dump()

    def warm_up(self) -> None:
        """Run both length extremes once so first requests do not pay for allocation and kernel choice."""
        for length in sorted({self.params.min_context_length, self.params.context_length}):
            t = np.arange(length, dtype=np.float32)
            rows = np.stack([100.0 + 10.0 * np.sin(2 * np.pi * t / self.params.season_length)] * 2)
            out = self._runner.run_sync({self._input_name: rows.astype(np.float32)})[self._output_name]
            if not np.isfinite(out).all():
                raise ManifestError(f"warm-up produced non-finite forecasts for length {length}")

    @property
    def tensor_inputs(self) -> list[TensorSpec]:
        return list(self.manifest.inputs)

    @property
    def tensor_outputs(self) -> list[TensorSpec]:
        return list(self.manifest.outputs)

    async def infer_tensors(self, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """V2: raw values [B, T] in, every quantile [B, horizon, Q] out; the same path as /v1/forecast."""
        values = inputs[self._input_name]
        self.observe_tensor_lengths(values)
        batch = self.tensor_batch(values)
        if batch is not None:
            out = (await self._runner.run({self._input_name: batch}))[self._output_name]
            return self.batch_outputs(batch, out)
        # Otherwise the per-row path, which names every row and value that does not fit.
        errors: list[ErrorDetail] = []
        series = [SeriesInput(values=row) for row in values]
        rows = self._prepare_rows(series, errors, lambda index: (self._input_name, index))
        if errors:
            raise InvalidInputError("the request does not fit this model", errors)
        outputs = await self._predict(rows)
        self._check_finite(outputs, errors, lambda index: (self._input_name, index))
        if errors:
            raise InvalidInputError("the model could not forecast some series", errors)
        return {self._output_name: np.stack(outputs)}

    async def forecast(self, query: ForecastQuery) -> list[SeriesForecast]:
        self.observe_lengths(len(s.values) for s in query.series)
        prepared = self.prepare(query)
        # A 336-value series is 11 kB of Python floats and 1.3 kB as float32; with dozens of requests
        # waiting in a worker, the lists were most of its growth under load (docs/memory.md). The
        # caller that hands its query over (service/http/v1.py) lets them go here.
        del query
        return self.finish(prepared, await self._predict(prepared.rows))

    def observe_lengths(self, lengths: Iterable[int]) -> None:
        self._input_lengths.observe(lengths)

    def prepare(self, query: ForecastQuery) -> PreparedForecast:
        """The query checked and turned into float32 rows, with no side effect; InvalidInputError if unfit."""
        errors: list[ErrorDetail] = []
        horizon = self._resolve_horizon(query.horizon, errors)
        keys_and_indices = self._resolve_quantiles(query.quantiles, errors)
        rows = self._prepare_rows(query.series, errors, _v1_row_loc)
        if errors:
            raise InvalidInputError("the request does not fit this model", errors)
        return PreparedForecast([series.id for series in query.series], rows, horizon, keys_and_indices)

    def finish(self, prepared: PreparedForecast, outputs: list[Float32Array]) -> list[SeriesForecast]:
        """The model's outputs for the prepared rows as forecasts; InvalidInputError if any is not finite."""
        errors: list[ErrorDetail] = []
        self._check_finite(outputs, errors, _v1_row_loc)
        if errors:
            raise InvalidInputError("the model could not forecast some series", errors)
        forecasts = []
        horizon, keys_and_indices = prepared.horizon, prepared.keys_and_indices
        for series_id, row, out in zip(prepared.ids, prepared.rows, outputs, strict=True):
            # One copy per series, quantile-major, so that each quantile is a contiguous row that the
            # response encoder writes without another copy.
            by_quantile = np.ascontiguousarray(out[:horizon].T)
            forecasts.append(
                SeriesForecast(
                    id=series_id,
                    point=by_quantile[self._median_index],
                    quantiles={key: by_quantile[index] for key, index in keys_and_indices},
                    context_length_used=row.shape[0],
                )
            )
        return forecasts

    def one_batch(self, prepared: PreparedForecast) -> Float32Array | None:
        """The prepared rows as one [B, T] model input when they share a length (most requests), else None."""
        rows = prepared.rows
        if len(rows) == 1:
            return rows[0][np.newaxis]  # a view: one series needs no copy
        if len({row.shape[0] for row in rows}) != 1:
            return None
        return np.stack(rows)

    @property
    def runner(self) -> ModelRunner:
        return self._runner

    @property
    def input_name(self) -> str:
        return self._input_name

    @property
    def output_name(self) -> str:
        return self._output_name

    def observe_tensor_lengths(self, values: Tensor) -> None:
        count, length = values.shape
        self._input_lengths.observe(length for _ in range(count))

    def tensor_batch(self, values: Tensor) -> Float32Array | None:
        """A V2 input that passes every check at once as one model batch (one cut, no per-row work), else
        None: the per-row path then names what does not fit."""
        count, length = values.shape
        if (
            0 < count <= self._max_series
            and self.params.min_context_length <= length <= self._max_length
            and np.isfinite(values).all()
        ):
            return np.ascontiguousarray(values[:, -self.params.context_length :], dtype=np.float32)
        return None

    def batch_outputs(self, batch: Float32Array, out: Float32Array) -> dict[str, Tensor]:
        """The outputs for ``tensor_batch``'s batch; InvalidInputError if any forecast is not finite."""
        self.drift.observe(batch, out)
        errors: list[ErrorDetail] = []
        self._check_finite(list(out), errors, lambda index: (self._input_name, index))
        if errors:
            raise InvalidInputError("the model could not forecast some series", errors)
        return {self._output_name: out}

    def _resolve_horizon(self, requested: int | None, errors: list[ErrorDetail]) -> int:
        limit = self.params.horizon
        if requested is None:
            return limit
        if not 1 <= requested <= limit:
            errors.append(ErrorDetail(("horizon",), f"horizon must be between 1 and {limit} for this model"))
        return requested

    def _resolve_quantiles(
        self, requested: Sequence[float] | None, errors: list[ErrorDetail]
    ) -> list[tuple[str, int]]:
        available = self.params.quantiles
        if requested is None:
            return self._all_quantiles
        seen: set[float] = set()
        resolved: list[tuple[str, int]] = []
        for position, q in enumerate(requested):
            if q in seen:
                # A dict response cannot hold a key twice; refuse rather than silently merge.
                errors.append(ErrorDetail(("quantiles", position), f"quantile {q} is requested twice"))
            elif q not in available:
                errors.append(ErrorDetail(("quantiles", position), f"quantile {q} is not one of {available}"))
            else:
                resolved.append((quantile_key(available[available.index(q)]), available.index(q)))
            seen.add(q)
        return resolved

    def _prepare_rows(
        self, series: Sequence[SeriesInput], errors: list[ErrorDetail], row_loc: Callable[[int], Loc]
    ) -> list[Float32Array]:
        root = row_loc(0)[:1]
        if not series:
            errors.append(ErrorDetail(root, "at least one series is required"))
        if len(series) > self._max_series:
            errors.append(
                ErrorDetail(root, f"at most {self._max_series} series per request, got {len(series)}")
            )
            return []
        rows: list[Float32Array] = []
        for index, item in enumerate(series):
            loc = row_loc(index)
            n = len(item.values)
            if n < self.params.min_context_length:
                errors.append(
                    ErrorDetail(
                        loc, f"{n} values given; this model needs at least {self.params.min_context_length}"
                    )
                )
                continue
            if n > self._max_length:
                errors.append(
                    ErrorDetail(
                        loc,
                        f"{n} values given; at most {self._max_length} are accepted "
                        f"(only the last {self.params.context_length} are used)",
                    )
                )
                continue
            values = _float64_array(item.values)
            # Only the most recent context_length values reach the model; the response reports the count.
            recent = values[-self.params.context_length :]
            with np.errstate(over="ignore"):
                row = recent.astype(np.float32)
            # One check for the common case: a NaN, an infinity or a value beyond float32 all end up
            # non-finite in the float32 row. Values before the context are checked on their own.
            if np.isfinite(row).all() and (
                recent.shape[0] == n or np.isfinite(values[: n - recent.shape[0]]).all()
            ):
                rows.append(row)
                continue
            # Otherwise name the first offending value, as the checks below always did.
            if not np.isfinite(values).all():
                position = int(np.argmin(np.isfinite(values)))
                errors.append(ErrorDetail((*loc, position), "values must be finite numbers"))
                continue
            position = n - recent.shape[0] + int(np.argmin(np.isfinite(row)))
            errors.append(ErrorDetail((*loc, position), "value does not fit in 32-bit float (|x| > 3.4e38)"))
        return rows

    async def _predict(self, rows: list[Float32Array]) -> list[Float32Array]:
        # The graph takes rectangular [B, T]; grouping equal lengths changes no answer (no padding).
        by_length: dict[int, list[int]] = defaultdict(list)
        for index, row in enumerate(rows):
            by_length[row.shape[0]].append(index)
        results: list[Float32Array | None] = [None] * len(rows)
        for indices in by_length.values():
            # One series (most requests) needs no copy: a [1, T] view of its row.
            group = [rows[i] for i in indices]
            batch = group[0][np.newaxis] if len(group) == 1 else np.stack(group)
            out = (await self._runner.run({self._input_name: batch}))[self._output_name]
            self.drift.observe(batch, out)  # queued only; features are computed off the request path
            for position, index in enumerate(indices):
                results[index] = out[position]
        return [r for r in results if r is not None]

    def _check_finite(
        self, outputs: list[Float32Array], errors: list[ErrorDetail], row_loc: Callable[[int], Loc]
    ) -> None:
        # Huge but representable inputs can overflow inside the graph's scaling; that is a property of
        # the input, so it is the client's 422, not a 500.
        for index, out in enumerate(outputs):
            if not np.isfinite(out).all():
                errors.append(
                    ErrorDetail(
                        row_loc(index),
                        "the model produced non-finite forecasts for these values (magnitudes too large?)",
                    )
                )
