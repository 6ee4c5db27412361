import json
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
FORECASTER_DIR = REPO / "models/m4-hourly/1"
ENSEMBLE_DIR = REPO / "models/m4-hourly-ensemble/1"
ENSEMBLE_V2_DIR = REPO / "models/m4-hourly-ensemble/2"


@pytest.fixture(scope="session")
def forecaster_dir() -> Path:
    return FORECASTER_DIR


@pytest.fixture(scope="session")
def forecaster_manifest() -> dict[str, Any]:
    return json.loads((FORECASTER_DIR / "model.json").read_text())


@pytest.fixture(
    scope="session",
    params=[FORECASTER_DIR, ENSEMBLE_DIR, ENSEMBLE_V2_DIR],
    ids=["m4-hourly", "m4-hourly-ensemble", "m4-hourly-ensemble-v2"],
)
def committed_forecaster_dir(request: pytest.FixtureRequest) -> Path:
    """Every committed fp32 forecaster: the checks that hold for any of them run on each."""
    path: Path = request.param
    return path
