"""Discovers, verifies, loads and warms up models; reports each one's state.

Loaded models live in an immutable snapshot that is replaced in one assignment, so readers never see a
half-built registry and a later hot reload can swap versions without touching in-flight requests.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Literal

import anyio
import anyio.to_thread

from service.config import Settings
from service.exceptions import (
    ErrorDetail,
    InvalidInputError,
    ModelNotFoundError,
    ModelUnavailableError,
    ReloadRefusedError,
)
from service.metrics import ModelMetrics, ServedModel, publish_models, reject
from service.runtime.inference import BatchingConfig, ModelRunner
from service.runtime.manifest import (
    MANIFEST_FILENAME,
    MODEL_FILENAME,
    ManifestError,
    ModelManifest,
    load_manifest,
    verify_files,
)
from service.runtime.session import build_session, check_tensor_specs
from service.tasks import HANDLER_FACTORIES, TaskHandler

logger = logging.getLogger(__name__)

_VERSION_DIR = re.compile(r"^\d+$")

ModelState = Literal["ready", "failed"]


class RepositoryError(RuntimeError):
    """The repository itself is unusable (missing); the service cannot start."""


@dataclass(frozen=True)
class ModelRecord:
    name: str
    state: ModelState
    version: int | None = None
    error: str | None = None
    manifest: ModelManifest | None = None
    handler: TaskHandler | None = None
    provider: str | None = None
    model_sha256: str | None = None
    warmup_ms: float | None = None
    runner: ModelRunner | None = None
    # Why the latest hot reload was refused (the version above still serves); None after a good one.
    last_reload_error: str | None = None

    @property
    def task(self) -> str | None:
        return self.manifest.task if self.manifest else None


@dataclass(frozen=True)
class ReloadOutcome:
    """What a hot reload did: the record now serving and the one it replaced (None for a new model)."""

    record: ModelRecord
    previous: ModelRecord | None


@dataclass(frozen=True)
class RegistrySnapshot:
    models: Mapping[str, ModelRecord] = field(default_factory=lambda: MappingProxyType({}))


class ModelRegistry:
    def __init__(self, settings: Settings, providers: list[str]) -> None:
        self._settings = settings
        self._providers = providers
        self._snapshot = RegistrySnapshot()
        self._swap_lock = threading.Lock()
        # One reload at a time; created on first use so it binds to the serving event loop.
        self._reload_lock: asyncio.Lock | None = None

    def load(self) -> None:
        """Build a complete new snapshot, then publish it in one assignment."""
        root = self._settings.model_repository
        if not root.is_dir():
            raise RepositoryError(f"model repository {root} is not a directory")
        names = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        records = {name: self._load_one(name, root / name) for name in names}
        for pinned in sorted(set(self._settings.model_versions) - set(names)):
            records[pinned] = ModelRecord(
                pinned, "failed", error=f"pinned in settings but {root / pinned} is missing"
            )
        self._publish(records)

    def _publish(self, records: Mapping[str, ModelRecord]) -> None:
        with self._swap_lock:
            self._snapshot = RegistrySnapshot(MappingProxyType(dict(sorted(records.items()))))
            publish_models(
                ServedModel(r.name, r.version, r.provider)
                for r in records.values()
                if r.state == "ready" and r.version is not None and r.provider is not None
            )

    async def reload(self, name: str) -> ReloadOutcome:
        """Load the newest eligible version of one model and swap it in; refuse it if it fails to verify.

        Verification (checksums, tensor specs, warm-up) runs in a worker thread while the current
        version keeps serving. The swap is one snapshot assignment: requests that already resolved the
        old record finish on it, and its batcher closes once they are answered (ModelRunner.retire).
        On refusal the old record stays, with ``last_reload_error`` saying why.
        """
        if self._reload_lock is None:
            self._reload_lock = asyncio.Lock()
        model_dir = self._settings.model_repository / name
        plain_name = bool(name) and not name.startswith(".") and not {"/", "\\", "\0"} & set(name)
        if name not in self._snapshot.models and not (plain_name and model_dir.is_dir()):
            raise ModelNotFoundError(f"unknown model {name!r}", [ErrorDetail(("name",), "no such model")])
        # Shielded: once verification starts, a client that hangs up must not leave a half-done swap
        # (a loaded runner nobody closes, or an old one never retired).
        with anyio.CancelScope(shield=True):
            async with self._reload_lock:
                outcome = await self._reload_locked(name, model_dir)
        return outcome

    async def _reload_locked(self, name: str, model_dir: Path) -> ReloadOutcome:
        version: int | None = None
        try:
            if not model_dir.is_dir():
                raise ManifestError(f"{model_dir} is missing")
            version, version_dir = self._pick_version(name, model_dir)
            manifest = self._read_manifest(name, version, version_dir)
            record = await anyio.to_thread.run_sync(self._activate, name, version, version_dir, manifest)
        except Exception as exc:
            message = str(exc) if isinstance(exc, ManifestError) else f"{type(exc).__name__}: {exc}"
            reason = f"version {version}: {message}" if version is not None else message
            logger.error("model reload refused: name=%s version=%s reason=%s", name, version, message)
            current = self._snapshot.models.get(name)
            records = dict(self._snapshot.models)
            records[name] = (
                replace(current, last_reload_error=reason)
                if current is not None
                else ModelRecord(name, "failed", version=version, error=message, last_reload_error=reason)
            )
            self._publish(records)
            served = current.version if current is not None and current.state == "ready" else None
            raise ReloadRefusedError(
                f"reload of {name!r} refused: {reason}"
                + (f"; version {served} keeps serving" if served is not None else ""),
                [ErrorDetail(("repository", name, *(() if version is None else (str(version),))), message)],
            ) from exc
        previous = self._snapshot.models.get(name)
        records = dict(self._snapshot.models)
        records[name] = record
        self._publish(records)
        if previous is not None and previous.runner is not None:
            previous.runner.retire()
        logger.info(
            "model reloaded: name=%s version=%s->%s sha256=%s warmup_ms=%.1f",
            name, previous.version if previous else None, version, (record.model_sha256 or "")[:12],
            record.warmup_ms or 0.0,
        )  # fmt: skip
        return ReloadOutcome(record, previous)

    def snapshot(self) -> RegistrySnapshot:
        return self._snapshot

    def get(self, name: str) -> ModelRecord:
        record = self._snapshot.models.get(name)
        if record is None:
            raise ModelNotFoundError(f"unknown model {name!r}", [ErrorDetail(("name",), "no such model")])
        return record

    def default_for(self, task: str) -> ModelRecord | None:
        # First by name among models whose manifest says this task; stable even if that model failed.
        return next((r for r in self._snapshot.models.values() if r.task == task), None)

    def resolve(self, name: str | None, task: str) -> ModelRecord:
        """The ready model a request should use, or the domain error explaining why there is none."""
        models = self._snapshot.models
        if name is None:
            record = self.default_for(task)
            if record is None:
                raise ModelUnavailableError(f"no {task} model is available")
        elif name not in models:
            raise InvalidInputError(
                f"unknown model {name!r}",
                [ErrorDetail(("model",), f"unknown model; available: {sorted(models)}")],
            )
        else:
            record = models[name]
            if record.task is not None and record.task != task:
                raise InvalidInputError(
                    f"model {name!r} is a {record.task} model",
                    [ErrorDetail(("model",), f"model serves task {record.task!r}, not {task!r}")],
                )
        if record.state != "ready":
            reject(record.name, "unavailable")
            raise ModelUnavailableError(f"model {record.name!r} is not ready: {record.error}")
        return record

    def close(self) -> None:
        """Stop every model's batcher (its loop task and worker thread) at shutdown."""
        for record in self._snapshot.models.values():
            if record.runner is not None:
                record.runner.close()

    def not_ready(self) -> dict[str, str]:
        """Model name -> reason, for every model that is not serving; empty when all are ready."""
        models = self._snapshot.models
        if not models:
            return {"*": f"no models found in {self._settings.model_repository}"}
        return {name: r.error or r.state for name, r in models.items() if r.state != "ready"}

    def _load_one(self, name: str, model_dir: Path) -> ModelRecord:
        version: int | None = None
        manifest: ModelManifest | None = None
        try:
            version, version_dir = self._pick_version(name, model_dir)
            manifest = self._read_manifest(name, version, version_dir)
            record = self._activate(name, version, version_dir, manifest)
        except Exception as exc:  # one bad artifact must not take the others down
            message = str(exc) if isinstance(exc, ManifestError) else f"{type(exc).__name__}: {exc}"
            logger.error("model refused: name=%s version=%s reason=%s", name, version, message)
            # Keep the manifest when we got that far so /v1/models can still show task and parameters.
            return ModelRecord(name, "failed", version=version, manifest=manifest, error=message)
        logger.info(
            "model loaded: name=%s version=%s sha256=%s provider=%s warmup_ms=%.1f",
            name, version, (record.model_sha256 or "")[:12], record.provider, record.warmup_ms or 0.0,
        )  # fmt: skip
        return record

    def _batching_config(self, name: str) -> BatchingConfig | None:
        if not self._settings.batching_enabled:
            return None
        return BatchingConfig(
            max_queue_delay_seconds=self._settings.max_queue_delay_seconds,
            max_queue_rows=self._settings.max_queue_rows,
            inline_max_seconds=self._settings.inline_max_seconds,
        )

    def _pick_version(self, name: str, model_dir: Path) -> tuple[int, Path]:
        folders: dict[int, list[Path]] = {}
        for path in model_dir.iterdir():
            if path.is_dir() and _VERSION_DIR.match(path.name):
                folders.setdefault(int(path.name), []).append(path)
        pinned = self._settings.model_versions.get(name)
        if pinned is not None and pinned not in folders:
            raise ManifestError(f"pinned version {pinned} not found in {model_dir} (have {sorted(folders)})")
        if not folders:
            raise ManifestError(f"{model_dir}: no integer version folders")
        version = pinned if pinned is not None else self._default_version(folders)
        if len(folders[version]) > 1:
            # "1" and "01" would both claim version 1; refuse to guess which one is meant.
            raise ManifestError(
                f"{model_dir}: ambiguous folders for version {version}: {sorted(folders[version])}"
            )
        return version, folders[version][0]

    @staticmethod
    def _default_version(folders: dict[int, list[Path]]) -> int:
        """Highest version, skipping those whose manifest opts out ("default": false, e.g. an int8
        variant that failed its quality gate). An unreadable manifest is not skipped: it gets loaded
        and its failure reported, rather than silently serving an older version."""
        for version in sorted(folders, reverse=True):
            try:
                opted_out = (
                    json.loads((folders[version][0] / MANIFEST_FILENAME).read_text()).get("default") is False
                )
            except (OSError, ValueError, AttributeError):
                opted_out = False
            if not opted_out:
                return version
        return max(folders)

    def _read_manifest(self, name: str, version: int, version_dir: Path) -> ModelManifest:
        manifest = load_manifest(version_dir)
        if manifest.name != name or manifest.version != version:
            raise ManifestError(
                f"{version_dir}: manifest says {manifest.name}/{manifest.version}, folder is {name}/{version}"
            )
        return manifest

    def _activate(self, name: str, version: int, version_dir: Path, manifest: ModelManifest) -> ModelRecord:
        factory = HANDLER_FACTORIES.get(manifest.task)
        if factory is None:
            raise ManifestError(
                f"task {manifest.task!r} is not supported (known: {sorted(HANDLER_FACTORIES)})"
            )
        verify_files(version_dir, manifest)
        session = build_session(version_dir / MODEL_FILENAME, self._providers, self._settings)
        check_tensor_specs(session, manifest)
        provider = session.get_providers()[0]
        rows_per_run = manifest.serving.rows_per_run(provider) if self._settings.batch_size_hints else None
        runner = ModelRunner(
            session,
            manifest.outputs,
            self._settings.max_batch_size,
            f"{name}/{version}",
            self._batching_config(name),
            observer=ModelMetrics(name, version),
            rows_per_run=rows_per_run,
        )
        handler = factory(manifest, runner, self._settings, version_dir)
        started = time.perf_counter()
        handler.warm_up()
        return ModelRecord(
            name,
            "ready",
            version=version,
            manifest=manifest,
            handler=handler,
            runner=runner,
            provider=provider,
            model_sha256=manifest.files[MODEL_FILENAME].sha256,
            warmup_ms=(time.perf_counter() - started) * 1000.0,
        )
