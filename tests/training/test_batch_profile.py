"""The serving hint: measured on real inputs, recorded in model.json, consistent in the committed models."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from training.batch_profile import PROFILE_BATCHES, profile, profile_version, take_rows
from training.manifest import sha256_file
from training.series_io import load_m4_wide

REPO = Path(__file__).resolve().parents[2]
# Versions trained here carry the hint their training measured; a dropped-in model (task tensor) or a
# generation graph (state batched on axis 1) has none, and the service then runs whole micro-batches.
_ALL = sorted(p.parent for p in (REPO / "models").glob("*/*/model.json"))
COMMITTED = [d for d in _ALL if "serving" in json.loads((d / "model.json").read_text())]


def test_every_forecast_and_sentiment_version_carries_a_hint() -> None:
    tasks = {d: json.loads((d / "model.json").read_text())["task"] for d in _ALL}
    profiled = {d for d, task in tasks.items() if task in ("forecast", "sentiment")}
    assert profiled and profiled <= set(COMMITTED)


def test_take_rows_repeats_real_rows_to_the_batch_size() -> None:
    feeds = {"x": np.arange(6, dtype=np.float32).reshape(3, 2), "n": np.array([1, 2, 3])}
    out = take_rows(feeds, 7)
    assert out["x"].shape == (7, 2) and out["n"].tolist() == [1, 2, 3, 1, 2, 3, 1]
    assert take_rows(feeds, 2)["n"].tolist() == [1, 2]


def test_profile_reports_every_batch_and_picks_the_fastest() -> None:
    series = list(load_m4_wide(REPO / "training/data/m4/Hourly-train.csv").values())[:8]
    rows = np.stack([np.asarray(s[-336:], dtype=np.float32) for s in series])
    result = profile(
        REPO / "models/m4-hourly/1/model.onnx", {"values": rows}, batches=(1, 4), seconds_per_batch=0.2
    )
    rates = {int(b): r for b, r in result["rows_per_s"].items()}
    assert set(rates) == {1, 4} and all(r > 0 for r in rates.values())
    assert result["preferred_batch_size"] == max(rates, key=rates.__getitem__)
    assert result["provider"] == "CPUExecutionProvider" and result["intra_op_threads"] == 1


def test_profile_version_records_the_hint_and_leaves_the_checksums_valid(tmp_path: Path) -> None:
    target = tmp_path / "m4-hourly" / "1"
    shutil.copytree(REPO / "models/m4-hourly/1", target)
    before = json.loads((target / "model.json").read_text())
    serving = profile_version(target, seconds_per_batch=0.2)
    after = json.loads((target / "model.json").read_text())
    assert after["serving"] == serving and set(serving["rows_per_s"]) == {str(b) for b in PROFILE_BATCHES}
    assert {k: v for k, v in after.items() if k != "serving"} == {
        k: v for k, v in before.items() if k != "serving"
    }
    for name, meta in after["files"].items():
        assert sha256_file(target / name) == meta["sha256"]


@pytest.mark.parametrize("version_dir", COMMITTED, ids=lambda d: f"{d.parent.name}-v{d.name}")
def test_committed_hint_is_the_fastest_of_its_own_measurements(version_dir: Path) -> None:
    serving = json.loads((version_dir / "model.json").read_text())["serving"]
    rates = {int(b): r for b, r in serving["rows_per_s"].items()}
    assert set(rates) == set(PROFILE_BATCHES)
    assert serving["preferred_batch_size"] == max(rates, key=rates.__getitem__)
