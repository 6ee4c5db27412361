"""The model repository extension's operations: index, load and unload, on every worker.

With several workers each has its own registry. The worker that receives a load or unload performs it,
publishes the outcome through the reload directory (``service.runtime.reload_sync``), and waits
(bounded) until every live worker has done the same, so the answer means "done everywhere".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import anyio.to_thread

from service.config import Settings
from service.runtime import reload_sync
from service.runtime.manifest import ManifestError
from service.runtime.registry import ModelRecord, ModelRegistry, ReloadOutcome
from service.runtime.versions import version_folders


@dataclass(frozen=True)
class Workers:
    expected: int
    confirmed: int


async def load(registry: ModelRegistry, settings: Settings, name: str) -> tuple[ReloadOutcome, Workers]:
    outcome = await registry.reload(name)
    record = outcome.record
    if settings.reload_dir is None:
        return outcome, Workers(1, 1)
    published = await anyio.to_thread.run_sync(
        reload_sync.publish, settings.reload_dir, name, record.version, record.content_sha256
    )
    acks = await reload_sync.wait_for_acks(settings.reload_dir, name, published, settings.workers)
    return outcome, Workers(acks.expected, acks.confirmed)


async def unload(registry: ModelRegistry, settings: Settings, name: str) -> Workers:
    await registry.unload(name, settings.unload_drain_seconds)
    if settings.reload_dir is None:
        return Workers(1, 1)
    published = await anyio.to_thread.run_sync(
        reload_sync.publish, settings.reload_dir, name, None, None, False
    )
    acks = await reload_sync.wait_for_acks(settings.reload_dir, name, published, settings.workers)
    return Workers(acks.expected, acks.confirmed)


def index(registry: ModelRegistry, settings: Settings, ready_only: bool) -> list[dict[str, Any]]:
    """Every version folder in the repository with its state: READY, or UNAVAILABLE and why."""
    root = settings.model_repository
    snapshot = registry.snapshot()
    names = sorted(
        {p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")} | set(snapshot.models)
    )
    rows: list[dict[str, Any]] = []
    for name in names:
        record = snapshot.models.get(name)
        loaded = snapshot.versions.get(name, {})
        problem: str | None = None
        try:
            on_disk = sorted(version_folders(root / name))
        except (OSError, ManifestError) as exc:  # missing folder, or no usable version folders
            on_disk, problem = [], str(exc)
        versions: list[int | None] = [*sorted(set(on_disk) | set(loaded))] or [None]
        for version in versions:
            rows.append(_row(name, version, record, loaded, problem))
    return [row for row in rows if row["state"] == "READY"] if ready_only else rows


def _row(
    name: str,
    version: int | None,
    record: ModelRecord | None,
    loaded: Mapping[int, ModelRecord],
    problem: str | None,
) -> dict[str, Any]:
    row: dict[str, Any] = {"name": name, "version": "" if version is None else str(version)}
    served = loaded.get(version) if version is not None else None
    if served is not None and served.state == "ready":
        row["state"] = "READY"
        return row
    row["state"] = "UNAVAILABLE"
    if served is not None:
        row["reason"] = served.error or served.state
    elif record is not None and record.state == "unloaded":
        row["reason"] = "unloaded"
    elif problem is not None:
        row["reason"] = problem
    elif record is not None and record.state == "failed" and not loaded:
        row["reason"] = record.error or "failed"
    else:
        row["reason"] = "not selected by the version policy"
    return row
