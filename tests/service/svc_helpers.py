"""Shared helpers for service tests (a uniquely named module: tests/ has no packages)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from service.config import Settings

REPO = Path(__file__).resolve().parents[2]
MODELS = REPO / "models"
MODEL_NAME = "m4-hourly"
MODEL_DIR = MODELS / MODEL_NAME / "1"
TRAIN_CSV = REPO / "training" / "data" / "m4" / "Hourly-train.csv"


def load_manifest_dict() -> dict[str, Any]:
    return json.loads((MODEL_DIR / "model.json").read_text())


def read_m4_series(limit: int) -> list[tuple[str, list[float]]]:
    """First `limit` series of the M4 Hourly training file: header row, then id and values (blank-padded)."""
    out: list[tuple[str, list[float]]] = []
    with TRAIN_CSV.open(newline="") as handle:
        reader = csv.reader(handle)
        next(reader)
        for row in reader:
            out.append((row[0], [float(x) for x in row[1:] if x.strip()]))
            if len(out) == limit:
                break
    return out


def make_settings(repository: Path = MODELS, **overrides: Any) -> Settings:
    return Settings(model_repository=repository, **overrides)


def copy_model(
    tmp_path: Path,
    edit_manifest: Callable[[dict[str, Any]], None] | None = None,
    name: str = MODEL_NAME,
    version: str = "1",
) -> Path:
    """Copy the committed model into tmp_path/models/<name>/<version>; return the repository root."""
    repo = tmp_path / "models"
    target = repo / name / version
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(MODEL_DIR, target)
    manifest = json.loads((target / "model.json").read_text())
    manifest["name"] = name
    manifest["version"] = int(version)
    if edit_manifest is not None:
        edit_manifest(manifest)
    (target / "model.json").write_text(json.dumps(manifest))
    return repo


def assert_error(
    response: httpx.Response, status: int, loc: list[Any] | None = None, error_type: str | None = None
) -> dict[str, Any]:
    """Check the status, the exact error shape, and (optionally) that some detail points at `loc`."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"type", "message", "details"}
    assert isinstance(error["type"], str) and error["type"]
    assert isinstance(error["message"], str) and error["message"]
    for detail in error["details"]:
        assert set(detail) == {"loc", "msg"}
        assert isinstance(detail["loc"], list) and isinstance(detail["msg"], str)
    if loc is not None:
        assert loc in [d["loc"] for d in error["details"]], error["details"]
    if error_type is not None:
        assert error["type"] == error_type
    return error


@contextmanager
def launched_service(
    tmp_path: Path, port: int, workers: int, env: dict[str, str] | None = None
) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """``python -m service`` as deployed, on an empty repository, until every worker has started.

    Yields the launcher process and its log; on exit, SIGTERM must end it with status 0.
    """
    (tmp_path / "models").mkdir(exist_ok=True)
    full_env = {**os.environ, "SEQSERVE_WORKERS": str(workers), "SEQSERVE_PORT": str(port),
                "SEQSERVE_HOST": "127.0.0.1", "SEQSERVE_MODEL_REPOSITORY": str(tmp_path / "models"),
                **(env or {})}  # fmt: skip
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        command = [sys.executable, "-m", "service"]
        proc = subprocess.Popen(command, cwd=REPO, env=full_env, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 60
        while log_path.read_text().count("Application startup complete.") < workers:
            assert proc.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
        yield proc, log_path
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log_path.read_text()
