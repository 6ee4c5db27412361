"""The task plug-in point: a new task (e.g. sentiment) adds a handler module and one entry here."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from service.config import Settings
from service.runtime.inference import ModelRunner
from service.runtime.manifest import ModelManifest
from service.tasks.forecast import ForecastHandler
from service.tasks.sentiment import SentimentHandler


class TaskHandler(Protocol):
    task: str

    @property
    def public_parameters(self) -> dict[str, Any]: ...

    def warm_up(self) -> None: ...


class HandlerFactory(Protocol):
    def __call__(
        self, manifest: ModelManifest, runner: ModelRunner, settings: Settings, version_dir: Path
    ) -> TaskHandler: ...


HANDLER_FACTORIES: dict[str, HandlerFactory] = {
    "forecast": ForecastHandler.from_manifest,
    "sentiment": SentimentHandler.from_manifest,
}
