from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from svc_helpers import load_manifest_dict, make_settings, read_m4_series

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
def client() -> Iterator[TestClient]:
    """One app on the real repository for every API test that does not need special settings."""
    with TestClient(create_app(make_settings())) as test_client:
        yield test_client
