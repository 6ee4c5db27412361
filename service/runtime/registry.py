"""Discovers, verifies, loads and warms up models; reports each one's state.

Loaded models live in an immutable snapshot that is replaced in one assignment, so readers never see a
half-built registry and a later hot reload can swap versions without touching in-flight requests.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
import time
import weakref
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
    MODEL_FILENAME,
    ManifestError,
    ModelManifest,
    load_manifest,
    verify_files,
)
from service.runtime.memory import pin_mmap_threshold, release_retired, trim_heap
from service.runtime.providers import CPU
from service.runtime.session import ARENA_SHRINK, batch_lanes, build_session, check_tensor_specs
from service.runtime.versions import VersionPolicy, select_versions
from service.tasks import HANDLER_FACTORIES, TaskHandler

logger = logging.getLogger(__name__)

# "unloaded": taken out through the repository API; not counted against readiness.
ModelState = Literal["ready", "failed", "unloaded"]


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

    @property
    def content_sha256(self) -> str | None:
        """What workers compare to follow a reload: a digest of every checksum the manifest lists, so
        that new weights in ``model.onnx.data`` or a new tokenizer beside an unchanged graph count too."""
        if self.manifest is None:
            return None
        listed = "\n".join(f"{name} {entry.sha256}" for name, entry in sorted(self.manifest.files.items()))
        return hashlib.sha256(listed.encode()).hexdigest()


@dataclass(frozen=True)
class ReloadOutcome:
    """What a hot reload did: the record now serving and the one it replaced (None for a new model)."""

    record: ModelRecord
    previous: ModelRecord | None


@dataclass(frozen=True)
class RegistrySnapshot:
    # Per model name, the record of its default version (the one unversioned requests get).
    models: Mapping[str, ModelRecord] = field(default_factory=lambda: MappingProxyType({}))
    # Per model name, every version the policy selected, ready or failed (default included).
    versions: Mapping[str, Mapping[int, ModelRecord]] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class _Entry:
    default: ModelRecord
    versions: dict[int, ModelRecord]


class ModelRegistry:
    def __init__(self, settings: Settings, providers: list[str]) -> None:
        self._settings = settings
        self._providers = providers
        self._snapshot = RegistrySnapshot()
        self._swap_lock = threading.Lock()
        # One reload at a time; created on first use so it binds to the serving event loop.
        self._reload_lock: asyncio.Lock | None = None
        # Collections running after unloads (release_retired); held so the event loop keeps them.
        self._releases: set[asyncio.Task[bool]] = set()

    def load(self) -> None:
        """Build a complete new snapshot, then publish it in one assignment."""
        root = self._settings.model_repository
        if not root.is_dir():
            raise RepositoryError(f"model repository {root} is not a directory")
        names = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        pin_mmap_threshold()
        # Largest first: building a session briefly needs about twice its weights (the parsed model and
        # the tensors made from it), and that transient is the worker's peak RSS when it lands on top of
        # every other model already loaded (docs/memory.md). The snapshot is sorted by name regardless.
        names.sort(key=lambda name: -_weights_bytes(root / name))
        entries = {name: self._load_one(name, root / name) for name in names}
        for pinned in sorted(set(self._settings.model_versions) - set(names)):
            record = ModelRecord(pinned, "failed", error=f"pinned in settings but {root / pinned} is missing")
            entries[pinned] = _Entry(record, {})
        self._publish(entries)

    def _entries(self) -> dict[str, _Entry]:
        snapshot = self._snapshot
        return {
            name: _Entry(record, dict(snapshot.versions.get(name, {})))
            for name, record in snapshot.models.items()
        }

    def _publish(self, entries: Mapping[str, _Entry]) -> None:
        with self._swap_lock:
            ordered = dict(sorted(entries.items()))
            self._snapshot = RegistrySnapshot(
                MappingProxyType({name: entry.default for name, entry in ordered.items()}),
                MappingProxyType(
                    {name: MappingProxyType(dict(entry.versions)) for name, entry in ordered.items()}
                ),
            )
            publish_models(
                ServedModel(r.name, r.version, r.provider)
                for entry in ordered.values()
                for r in entry.versions.values()
                if r.state == "ready" and r.version is not None and r.provider is not None
            )

    def policy_for(self, name: str) -> VersionPolicy:
        return VersionPolicy.parse(
            self._settings.model_version_policies.get(name, self._settings.version_policy)
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
            selected, version = select_versions(
                model_dir, self.policy_for(name), self._settings.model_versions.get(name)
            )
            entry = await anyio.to_thread.run_sync(self._activate_versions, name, selected, version)
            if entry.default.state != "ready":
                _retire(entry)  # versions that did load must not keep their sessions
                raise ManifestError(entry.default.error or "failed")
        except Exception as exc:
            message = str(exc) if isinstance(exc, ManifestError) else f"{type(exc).__name__}: {exc}"
            reason = f"version {version}: {message}" if version is not None else message
            logger.error("model reload refused: name=%s version=%s reason=%s", name, version, message)
            entries = self._entries()
            current = entries.get(name)
            entries[name] = (
                _Entry(replace(current.default, last_reload_error=reason), current.versions)
                if current is not None
                else _Entry(
                    ModelRecord(name, "failed", version=version, error=message, last_reload_error=reason), {}
                )
            )
            self._publish(entries)
            ready = current is not None and current.default.state == "ready"
            served = current.default.version if current is not None and ready else None
            raise ReloadRefusedError(
                f"reload of {name!r} refused: {reason}"
                + (f"; version {served} keeps serving" if served is not None else ""),
                [ErrorDetail(("repository", name, *(() if version is None else (str(version),))), message)],
            ) from exc
        entries = self._entries()
        previous = entries.get(name)
        entries[name] = entry
        self._publish(entries)
        if previous is not None:
            _retire(previous)
        record = entry.default
        logger.info(
            "model reloaded: name=%s version=%s->%s versions=%s sha256=%s warmup_ms=%.1f",
            name, previous.default.version if previous else None, version, sorted(entry.versions),
            (record.model_sha256 or "")[:12], record.warmup_ms or 0.0,
        )  # fmt: skip
        return ReloadOutcome(record, previous.default if previous else None)

    async def unload(self, name: str, drain_timeout_seconds: float) -> list[int]:
        """Take a model out of service: no new requests, drain the ones in flight, then free its sessions.

        Returns the versions that were loaded. Nothing here keeps a record of them afterwards: the
        sessions are freed once the last request holding one is answered.
        """
        if self._reload_lock is None:
            self._reload_lock = asyncio.Lock()
        with anyio.CancelScope(shield=True):
            async with self._reload_lock:
                versions, retired = await self._unload_locked(name, drain_timeout_seconds)
        logger.info("model unloaded: name=%s versions=%s", name, versions)
        # Off the lock: a load may follow at once while a straggler request still holds the old runner.
        release = asyncio.create_task(release_retired(retired, self._settings.request_timeout_seconds))
        self._releases.add(release)
        release.add_done_callback(self._releases.discard)
        return versions

    async def _unload_locked(
        self, name: str, drain_timeout_seconds: float
    ) -> tuple[list[int], list[weakref.ref[ModelRunner]]]:
        entries = self._entries()
        current = entries.get(name)
        if current is None:
            raise ModelNotFoundError(f"unknown model {name!r}", [ErrorDetail(("name",), "no such model")])
        entries[name] = _Entry(
            ModelRecord(name, "unloaded", version=current.default.version, error="unloaded"), {}
        )
        self._publish(entries)
        runners = [r.runner for r in current.versions.values() if r.runner is not None]
        for runner in runners:
            runner.retire()
        await _drained(runners, drain_timeout_seconds)
        return sorted(current.versions), [weakref.ref(runner) for runner in runners]

    def snapshot(self) -> RegistrySnapshot:
        return self._snapshot

    def get(self, name: str) -> ModelRecord:
        record = self._snapshot.models.get(name)
        if record is None:
            raise ModelNotFoundError(f"unknown model {name!r}", [ErrorDetail(("name",), "no such model")])
        return record

    def default_for(self, task: str) -> ModelRecord | None:
        """The model a request without a name gets: the one ``default_models`` names for the task, else
        the first by name among models whose manifest says this task (stable even if it failed)."""
        models = self._snapshot.models
        chosen = self._settings.default_models.get(task)
        if chosen is not None:
            record = models.get(chosen)
            if record is not None and record.task == task and record.state != "unloaded":
                return record
            if "default_models" in self._settings.model_fields_set:
                # Named by the operator: serving another model instead would surprise them.
                raise ModelUnavailableError(
                    f"default {task} model {chosen!r} (SEQSERVE_DEFAULT_MODELS) is not available"
                )
        # An unloaded model was taken out on purpose, so the next one by name serves instead.
        return next((r for r in models.values() if r.task == task and r.state != "unloaded"), None)

    def loaded_versions(self, name: str) -> list[int]:
        versions = self._snapshot.versions.get(name, {})
        return sorted(v for v, r in versions.items() if r.state == "ready")

    def get_version(self, name: str, version: int | None) -> ModelRecord:
        """The record of one loaded version (the default one when ``version`` is None), or a 404 naming
        the versions that are loaded."""
        record = self.get(name)
        if version is None:
            return record
        versions = self._snapshot.versions.get(name, {})
        found = versions.get(version)
        if found is None:
            loaded = sorted(v for v, r in versions.items() if r.state == "ready")
            raise ModelNotFoundError(
                f"model {name!r} version {version} is not loaded (loaded versions: {loaded})",
                [ErrorDetail(("version",), f"not loaded; loaded versions: {loaded}")],
            )
        return found

    def resolve(self, name: str | None, task: str) -> ModelRecord:
        """The ready model a request should use, or the domain error explaining why there is none."""
        record = self._lookup(name, task)
        if record.state != "ready":
            reject(record.name, "unavailable")
            raise ModelUnavailableError(f"model {record.name!r} is not ready: {record.error}")
        return record

    def ready(self, name: str | None, task: str) -> ModelRecord | None:
        """What ``resolve`` returns, or None where it would raise; counts nothing."""
        try:
            record = self._lookup(name, task)
        except (InvalidInputError, ModelUnavailableError):
            return None
        return record if record.state == "ready" else None

    def _lookup(self, name: str | None, task: str) -> ModelRecord:
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
        return record

    def close(self) -> None:
        """Stop every model's batcher (its loop task and worker thread) at shutdown."""
        for versions in self._snapshot.versions.values():
            for record in versions.values():
                if record.runner is not None:
                    record.runner.close()

    def not_ready(self) -> dict[str, str]:
        """Model name -> reason, for every model that is not serving; empty when all are ready."""
        models = self._snapshot.models
        if not models:
            return {"*": f"no models found in {self._settings.model_repository}"}
        return {
            name: r.error or r.state for name, r in models.items() if r.state not in ("ready", "unloaded")
        }

    def _load_one(self, name: str, model_dir: Path) -> _Entry:
        version: int | None = None
        try:
            selected, version = select_versions(
                model_dir, self.policy_for(name), self._settings.model_versions.get(name)
            )
        except Exception as exc:  # one bad model folder must not take the others down
            message = str(exc) if isinstance(exc, ManifestError) else f"{type(exc).__name__}: {exc}"
            logger.error("model refused: name=%s reason=%s", name, message)
            return _Entry(ModelRecord(name, "failed", error=message), {})
        return self._activate_versions(name, selected, version)

    def _activate_versions(self, name: str, selected: Mapping[int, Path], default: int) -> _Entry:
        versions = {version: self._load_version(name, version, path) for version, path in selected.items()}
        return _Entry(versions[default], versions)

    def _load_version(self, name: str, version: int, version_dir: Path) -> ModelRecord:
        manifest: ModelManifest | None = None
        try:
            manifest = self._read_manifest(name, version, version_dir)
            record = self._activate(name, version, version_dir, manifest)
        except Exception as exc:  # one bad artifact must not take the others down
            message = str(exc) if isinstance(exc, ManifestError) else f"{type(exc).__name__}: {exc}"
            logger.error("model refused: name=%s version=%s reason=%s", name, version, message)
            # Keep the manifest when we got that far so /v1/models can still show task and parameters.
            return ModelRecord(name, "failed", version=version, manifest=manifest, error=message)
        finally:
            # What the build freed (the parsed model, pre-packing scratch) goes back to the kernel before
            # the next model loads, instead of lingering as heap holes under it.
            trim_heap()
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
            lanes=batch_lanes(self._settings),
        )

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
        providers = session.get_providers()
        provider = providers[0]
        rows_per_run = manifest.serving.rows_per_run(provider) if self._settings.batch_size_hints else None
        # The arena shrink is measured on CPU sessions only (docs/memory.md); a session without ORT's CPU
        # arena refuses the option.
        shrinkable = self._settings.ort_cpu_mem_arena and providers == [CPU]
        runner = ModelRunner(
            session,
            manifest.outputs,
            self._settings.max_batch_size,
            f"{name}/{version}",
            self._batching_config(name),
            observer=ModelMetrics(name, version),
            rows_per_run=rows_per_run,
            arena_shrink=ARENA_SHRINK if shrinkable else None,
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


def _weights_bytes(model_dir: Path) -> int:
    """Bytes of every version's graph file in a model folder: the order of its load-time footprint."""
    try:
        return sum(path.stat().st_size for path in model_dir.glob(f"*/{MODEL_FILENAME}*"))
    except OSError:  # unreadable: load() reports it; order does not matter then
        return 0


def _retire(entry: _Entry) -> None:
    for record in entry.versions.values():
        if record.runner is not None:
            record.runner.retire()


async def _drained(runners: list[ModelRunner], timeout_seconds: float) -> None:
    """Wait until no request is inside any of these runners, or the timeout passes."""
    deadline = time.monotonic() + timeout_seconds
    while any(r.in_flight for r in runners) and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
