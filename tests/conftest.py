"""Settings shared by every test folder."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    # The service runs on asyncio (uvicorn); trio is installed only as selenium's dependency, and
    # anyio's plugin would otherwise run every async test on it too.
    return "asyncio"
