"""Propagates a hot reload to every uvicorn worker through a shared directory (``SEQSERVE_RELOAD_DIR``).

With ``SEQSERVE_WORKERS > 1`` each worker process has its own registry, and a reload request reaches one
of them. That worker reloads locally, then ``publish`` writes ``<dir>/<name>.json`` (atomically: a
temporary file and ``os.replace``) with the version and model sha256 it now serves and a generation that
grows by one per publication. Every worker runs ``watch`` in its event loop: it polls the directory
(``os.stat`` inode and mtime per file, every ``POLL_SECONDS``), and when a model's published version or
sha256 differs from the one it serves, it calls the same ``ModelRegistry.reload``. Either way it then writes
``<dir>/<name>.<pid>.ack`` with the generation it handled and the version it serves. The publishing
worker waits (``wait_for_acks``, bounded) until every live worker has confirmed before it answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio.to_thread

from service.runtime.registry import ModelRegistry

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.25
ACK_TIMEOUT_SECONDS = 10.0
# A follower drains for less than the publisher waits for acks, so its ack can arrive in time.
UNLOAD_DRAIN_SECONDS = 8.0
_LOCK_FILE = ".lock"


@dataclass(frozen=True)
class Published:
    generation: int
    version: int | None
    content_sha256: str | None
    # False: the model was unloaded (repository extension); followers unload it too.
    loaded: bool = True


@dataclass(frozen=True)
class AckCount:
    expected: int
    confirmed: int


def prepare(directory: Path) -> None:
    """Launcher side, before workers start: the directory exists and holds no previous run's files."""
    directory.mkdir(parents=True, exist_ok=True)
    for pattern in ("*.json", "*.ack", ".*.tmp"):
        for stale in directory.glob(pattern):
            stale.unlink(missing_ok=True)


def _write_atomically(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(payload))
    os.replace(tmp, path)


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _published(data: dict[str, Any] | None) -> Published | None:
    if data is None or not isinstance(data.get("generation"), int):
        return None
    return Published(
        data["generation"], data.get("version"), data.get("content_sha256"), data.get("loaded") is not False
    )


def read_published(directory: Path, name: str) -> Published | None:
    return _published(_read(directory / f"{name}.json"))


def publish(
    directory: Path, name: str, version: int | None, content_sha256: str | None, loaded: bool = True
) -> Published:
    """Record what this worker now serves under the next generation; returns that publication."""
    with (directory / _LOCK_FILE).open("a") as lock:
        # Two workers reloading at once must not hand out the same generation.
        fcntl.flock(lock, fcntl.LOCK_EX)
        previous = read_published(directory, name)
        published = Published((previous.generation if previous else 0) + 1, version, content_sha256, loaded)
        _write_atomically(
            directory / f"{name}.json",
            {
                "generation": published.generation,
                "version": version,
                "content_sha256": content_sha256,
                "loaded": loaded,
            },
        )
    write_ack(directory, name, published)
    return published


def write_ack(directory: Path, name: str, served: Published) -> None:
    """This worker has handled ``served.generation`` and serves ``served.version``/``content_sha256``."""
    _write_atomically(
        directory / f"{name}.{os.getpid()}.ack",
        {"generation": served.generation, "version": served.version, "content_sha256": served.content_sha256},
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def count_confirmed(directory: Path, name: str, published: Published) -> int:
    """Live workers whose ack says they handled this generation (or a later one) serving its version."""
    confirmed = 0
    prefix = f"{name}."
    for path in directory.glob(f"{name}.*.ack"):
        pid_text = path.name[len(prefix) : -len(".ack")]
        if not pid_text.isdigit() or not _alive(int(pid_text)):
            continue
        ack = _published(_read(path))
        if ack is None or ack.generation < published.generation:
            continue
        if ack.generation > published.generation or (
            (ack.version, ack.content_sha256) == (published.version, published.content_sha256)
        ):
            confirmed += 1
    return confirmed


async def wait_for_acks(
    directory: Path, name: str, published: Published, expected: int, timeout: float = ACK_TIMEOUT_SECONDS
) -> AckCount:
    """Poll until ``expected`` workers confirmed or ``timeout`` passed; says how many did."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        confirmed = count_confirmed(directory, name, published)
        if confirmed >= expected or loop.time() >= deadline:
            break
        await asyncio.sleep(POLL_SECONDS / 5)
    if confirmed < expected:
        logger.warning(
            "model reload not confirmed by every worker: name=%s version=%s generation=%d confirmed=%d/%d",
            name, published.version, published.generation, confirmed, expected,
        )  # fmt: skip
    return AckCount(expected=expected, confirmed=confirmed)


async def watch(directory: Path, registry: ModelRegistry) -> None:
    """Run until cancelled: follow reloads published by other workers and acknowledge each one."""
    seen: dict[str, tuple[int, int]] = {}
    handled: dict[str, int] = {}
    while True:
        try:
            await _poll_once(directory, registry, seen, handled)
        except asyncio.CancelledError:
            raise
        except Exception:  # the watcher must outlive any one bad file or failed reload
            logger.exception("reload watcher: poll failed")
        await asyncio.sleep(POLL_SECONDS)


async def _poll_once(
    directory: Path, registry: ModelRegistry, seen: dict[str, tuple[int, int]], handled: dict[str, int]
) -> None:
    with os.scandir(directory) as entries:
        changed = [
            # os.replace gives every publication a new inode, so two in one mtime tick still differ.
            (entry.name[: -len(".json")], (entry.stat().st_ino, entry.stat().st_mtime_ns))
            for entry in entries
            if entry.name.endswith(".json") and not entry.name.startswith(".")
        ]
    for name, stamp in changed:
        if seen.get(name) == stamp:
            continue
        published = read_published(directory, name)
        if published is None:
            continue  # being replaced or unreadable; the next poll tries again
        seen[name] = stamp
        if handled.get(name, 0) >= published.generation:
            continue
        handled[name] = published.generation
        await _follow(directory, registry, name, published)


async def _follow(directory: Path, registry: ModelRegistry, name: str, published: Published) -> None:
    current = registry.snapshot().models.get(name)
    if not published.loaded:
        loaded = current is not None and current.state != "unloaded"
        del current  # holding the record would keep its session alive past the unload
        if loaded:
            logger.info("reload watcher: unloading name=%s generation=%d", name, published.generation)
            await registry.unload(name, UNLOAD_DRAIN_SECONDS)
        gone = Published(published.generation, None, None)
        await anyio.to_thread.run_sync(write_ack, directory, name, gone)
        return
    if (
        current is None
        or current.state == "unloaded"
        or (current.version, current.content_sha256)
        != (
            published.version,
            published.content_sha256,
        )
    ):
        logger.info(
            "reload watcher: following name=%s version=%s generation=%d",
            name, published.version, published.generation,
        )  # fmt: skip
        try:
            await registry.reload(name)
        except Exception as exc:  # refused here: keep serving, and the ack below says what
            logger.error("reload watcher: reload of %s failed: %s", name, exc)
        current = registry.snapshot().models.get(name)
    served = Published(
        published.generation,
        current.version if current is not None else None,
        current.content_sha256 if current is not None else None,
    )
    await anyio.to_thread.run_sync(write_ack, directory, name, served)


@contextlib.asynccontextmanager
async def watching(directory: Path | None, registry: ModelRegistry) -> AsyncIterator[None]:
    """Runs ``watch`` in the background for the lifespan; a no-op without a directory (one worker)."""
    if directory is None:
        yield
        return
    task = asyncio.create_task(watch(directory, registry), name="seqserve-reload-watcher")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
