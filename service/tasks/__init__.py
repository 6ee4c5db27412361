"""The task plug-in point: a new task adds a handler module and one entry in ``HANDLER_FACTORIES``.

Every handler serves its own ``/v1`` route. A handler that also implements ``TensorTask`` is served
over the Open Inference Protocol (``/v2``): it declares the tensors a V2 client sees and maps them to
and from the model's graph, so both protocols share one validation path and one micro-batcher.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from service.config import Settings
from service.runtime.inference import ModelRunner
from service.runtime.manifest import ModelManifest, TensorSpec
from service.tasks.classify import ClassifyHandler
from service.tasks.forecast import ForecastHandler
from service.tasks.generate import GenerateHandler
from service.tasks.sentiment import SentimentHandler
from service.tasks.tensor import TensorHandler

Tensors = dict[str, np.ndarray[Any, Any]]


class TaskHandler(Protocol):
    task: str

    @property
    def public_parameters(self) -> dict[str, Any]: ...

    def warm_up(self) -> None: ...


@runtime_checkable
class TensorTask(Protocol):
    """The V2 view of a model: named tensors in, named tensors out, rows along the first axis.

    ``infer_tensors`` receives arrays whose dtype and rank already match ``tensor_inputs`` (BYTES as
    numpy object arrays of ``bytes``). It raises ``InvalidInputError`` with ``loc`` starting at the
    input name for anything the model cannot take, and returns every output in ``tensor_outputs``.
    """

    @property
    def tensor_inputs(self) -> list[TensorSpec]: ...

    @property
    def tensor_outputs(self) -> list[TensorSpec]: ...

    async def infer_tensors(self, inputs: Mapping[str, np.ndarray[Any, Any]]) -> Tensors: ...


class HandlerFactory(Protocol):
    def __call__(
        self, manifest: ModelManifest, runner: ModelRunner, settings: Settings, version_dir: Path
    ) -> TaskHandler: ...


HANDLER_FACTORIES: dict[str, HandlerFactory] = {
    "forecast": ForecastHandler.from_manifest,
    "sentiment": SentimentHandler.from_manifest,
    "generate": GenerateHandler.from_manifest,
    "classify": ClassifyHandler.from_manifest,
    "tensor": TensorHandler.from_manifest,
}
