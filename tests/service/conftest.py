from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from svc_helpers import MODELS, load_manifest_dict, make_settings, read_m4_series

from service.app import create_app


@pytest.fixture(scope="session")
def manifest() -> dict[str, Any]:
    return load_manifest_dict()


@pytest.fixture(scope="session")
def params(manifest: dict[str, Any]) -> dict[str, Any]:
    return manifest["parameters"]


@pytest.fixture(scope="session")
def m4_series() -> list[tuple[str, list[float]]]:
    return read_m4_series(3)


@pytest.fixture(scope="session")
def m4_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model repository holding only m4-hourly (linked), for servers that need one forecaster."""
    repo = tmp_path_factory.mktemp("m4-only") / "models"
    repo.mkdir()
    (repo / "m4-hourly").symlink_to(MODELS / "m4-hourly", target_is_directory=True)
    return repo


@pytest.fixture(scope="session")
def client() -> Iterator[TestClient]:
    """One app on the real repository for every API test that does not need special settings."""
    with TestClient(create_app(make_settings())) as test_client:
        yield test_client
