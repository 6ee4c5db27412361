"""Open Inference Protocol semantics over the registry: metadata, input checks, inference. No HTTP.

A model whose task handler implements ``TensorTask`` (forecast, sentiment, generic tensors, ...) is
served through that handler, so V2 and /v1 requests share validation and the micro-batcher. Any other
model (e.g. a generation graph whose LSTM state has its batch on axis 1) is served as its raw graph,
one request per ``session.run``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import numpy as np

from service import __version__
from service.exceptions import ErrorDetail, InvalidInputError
from service.runtime.manifest import TensorSpec
from service.runtime.registry import ModelRecord
from service.runtime.v2_codec import InferRequest
from service.tasks import TensorTask

EXTENSIONS = ["binary_tensor_data", "model_repository", "parameters"]
PLATFORM = "onnx_onnxv1"
Output = tuple[str, str, np.ndarray[Any, Any], bool]


def server_metadata() -> dict[str, Any]:
    return {"name": "seqserve", "version": __version__, "extensions": EXTENSIONS}


# Handler class -> whether it is a TensorTask. isinstance against a runtime-checkable Protocol looks up
# (and so evaluates) every member on each call, tens of microseconds per request; handler classes
# declare their members on the class, so the answer per class never changes.
_TENSOR_TASK_CLASSES: dict[type, bool] = {}


def as_tensor_task(handler: object) -> TensorTask | None:
    kind = type(handler)
    known = _TENSOR_TASK_CLASSES.get(kind)
    if known is None:
        known = _TENSOR_TASK_CLASSES[kind] = isinstance(handler, TensorTask)
    return cast(TensorTask, handler) if known else None


def tensor_specs(record: ModelRecord) -> tuple[list[TensorSpec], list[TensorSpec]]:
    handler = as_tensor_task(record.handler)
    if handler is not None:
        return handler.tensor_inputs, handler.tensor_outputs
    assert record.manifest is not None
    return list(record.manifest.inputs), list(record.manifest.outputs)


def _spec_json(spec: TensorSpec) -> dict[str, Any]:
    return {"name": spec.name, "datatype": spec.datatype, "shape": list(spec.shape)}


def model_metadata(record: ModelRecord, loaded_versions: Sequence[int]) -> dict[str, Any]:
    inputs, outputs = tensor_specs(record)
    return {
        "name": record.name,
        "versions": [str(v) for v in loaded_versions],
        "platform": PLATFORM,
        "inputs": [_spec_json(s) for s in inputs],
        "outputs": [_spec_json(s) for s in outputs],
    }


def check_inputs(specs: Sequence[TensorSpec], request: InferRequest) -> None:
    """Every input the model declares, none it does not, with its datatype, rank and fixed dims."""
    errors: list[ErrorDetail] = []
    expected = {spec.name: spec for spec in specs}
    for name in request.inputs:
        if name not in expected:
            message = f"unexpected input; the model takes {sorted(expected)}"
            errors.append(ErrorDetail(("inputs", name), message))
    for name, spec in expected.items():
        if name not in request.inputs:
            errors.append(ErrorDetail(("inputs", name), f"missing input ({spec.datatype} {spec.shape})"))
            continue
        datatype, shape = request.datatypes[name], list(request.inputs[name].shape)
        if datatype != spec.datatype:
            message = f"datatype {datatype}; the model expects {spec.datatype}"
            errors.append(ErrorDetail(("inputs", name), message))
        elif len(shape) != len(spec.shape) or any(
            want not in (-1, got) for want, got in zip(spec.shape, shape, strict=True)
        ):
            message = f"shape {shape} does not match the model's {spec.shape}"
            errors.append(ErrorDetail(("inputs", name), message))
    if errors:
        raise InvalidInputError("the inputs do not match the model", errors)


def check_outputs(specs: Sequence[TensorSpec], request: InferRequest) -> list[tuple[TensorSpec, bool]]:
    by_name = {spec.name: spec for spec in specs}
    if request.outputs is None:
        return [(spec, request.binary_data_output) for spec in specs]
    unknown = [o.name for o in request.outputs if o.name not in by_name]
    if unknown:
        raise InvalidInputError(
            f"unknown output(s) {unknown}; the model has {sorted(by_name)}",
            [ErrorDetail(("outputs",), f"unknown output(s) {unknown}")],
        )
    return [(by_name[o.name], o.binary or request.binary_data_output) for o in request.outputs]


async def infer(record: ModelRecord, request: InferRequest) -> list[Output]:
    inputs, outputs = tensor_specs(record)
    check_inputs(inputs, request)
    wanted = check_outputs(outputs, request)
    handler = as_tensor_task(record.handler)
    if handler is not None:
        results = await handler.infer_tensors(request.inputs)
    else:
        assert record.runner is not None
        results = await record.runner.run_direct(request.inputs)
    return [(spec.name, spec.datatype, results[spec.name], binary) for spec, binary in wanted]


def triton_config(record: ModelRecord, max_batch_size: int, queue_delay_seconds: float) -> dict[str, Any]:
    """A Triton-style model configuration, for clients that ask (tritonclient ``get_model_config``)."""
    inputs, outputs = tensor_specs(record)
    batched = all(spec.shape[0] == -1 for spec in [*inputs, *outputs])

    def entry(spec: TensorSpec) -> dict[str, Any]:
        dims = spec.shape[1:] if batched else spec.shape
        return {"name": spec.name, "data_type": f"TYPE_{_TRITON_TYPES[spec.datatype]}", "dims": dims}

    config: dict[str, Any] = {
        "name": record.name,
        "platform": "onnxruntime_onnx",
        "backend": "onnxruntime",
        "max_batch_size": max_batch_size if batched else 0,
        "input": [entry(s) for s in inputs],
        "output": [entry(s) for s in outputs],
    }
    if batched:
        config["dynamic_batching"] = {"max_queue_delay_microseconds": int(queue_delay_seconds * 1_000_000)}
    return config


_TRITON_TYPES = {
    "BOOL": "BOOL", "UINT8": "UINT8", "UINT16": "UINT16", "UINT32": "UINT32", "UINT64": "UINT64",
    "INT8": "INT8", "INT16": "INT16", "INT32": "INT32", "INT64": "INT64",
    "FP16": "FP16", "FP32": "FP32", "FP64": "FP64", "BYTES": "STRING",
}  # fmt: skip
