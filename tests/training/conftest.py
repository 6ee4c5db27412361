import json
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
FORECASTER_DIR = REPO / "models/m4-hourly/1"


@pytest.fixture(scope="session")
def forecaster_dir() -> Path:
    return FORECASTER_DIR


@pytest.fixture(scope="session")
def forecaster_manifest() -> dict[str, Any]:
    return json.loads((FORECASTER_DIR / "model.json").read_text())
