"""Evaluation reports: committed ones are listed and checksummed, and writing one keeps the manifest."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
COMMITTED = {
    "m4-hourly/1": {
        "report_learning_curves.png",
        "report_fan_charts.png",
        "report_coverage.png",
        "report_owa.png",
    },
    "sst2-bilstm/1": {"report_learning_curves.png", "report_confusion.png", "report_reliability.png"},
    "m4-hourly-ensemble/1": {
        "report_learning_curves.png",
        "report_fan_charts.png",
        "report_coverage.png",
        "report_owa.png",
    },
    "m4-hourly-ensemble/2": {
        "report_learning_curves.png",
        "report_fan_charts.png",
        "report_coverage.png",
        "report_owa.png",
    },
}


@pytest.mark.parametrize("model", sorted(COMMITTED))
def test_committed_reports_exist_and_are_checksummed(model: str) -> None:
    version_dir = REPO / "models" / model
    files = json.loads((version_dir / "model.json").read_text())["files"]
    expected = COMMITTED[model] | {"report.md"}
    assert expected <= set(files)
    for name in expected:
        data = (version_dir / name).read_bytes()
        assert files[name] == {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}, name
        if name.endswith(".png"):
            assert data[:8] == b"\x89PNG\r\n\x1a\n"
    # report.md shows every picture the manifest lists, and no other.
    shown = set(re.findall(r"!\[[^\]]*\]\(([^)]+)\)", (version_dir / "report.md").read_text()))
    assert shown == COMMITTED[model]


def test_record_files_changes_only_report_entries(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from training.reports import record_files

    (tmp_path / "report.md").write_text("# r\n")
    (tmp_path / "report_a.png").write_bytes(b"png")
    manifest = {
        "name": "x",
        "files": {
            "model.onnx": {"sha256": "0" * 64, "bytes": 1},
            "profile.json": {"sha256": "1" * 64, "bytes": 2},
            "report_gone.png": {"sha256": "2" * 64, "bytes": 3},
        },
        "drift": {"profile": "profile.json"},
    }
    (tmp_path / "model.json").write_text(json.dumps(manifest))
    record_files(tmp_path, ["report_a.png", "report.md"])
    written = json.loads((tmp_path / "model.json").read_text())
    assert written["drift"] == manifest["drift"]
    assert set(written["files"]) == {"model.onnx", "profile.json", "report_a.png", "report.md"}
    assert written["files"]["model.onnx"] == manifest["files"]["model.onnx"]
    assert written["files"]["report_a.png"] == {"sha256": hashlib.sha256(b"png").hexdigest(), "bytes": 3}


@pytest.mark.train
def test_forecast_report_is_written_from_the_artifact(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from training.reports import write_report

    version_dir = tmp_path / "m4-hourly" / "1"
    version_dir.mkdir(parents=True)
    for name in ("model.onnx", "model.json"):
        shutil.copy(REPO / "models/m4-hourly/1" / name, version_dir / name)
    written = write_report(version_dir)
    assert set(written) == COMMITTED["m4-hourly/1"] | {"report.md"}
    files = json.loads((version_dir / "model.json").read_text())["files"]
    for name in written:
        assert files[name]["sha256"] == hashlib.sha256((version_dir / name).read_bytes()).hexdigest()
    # Same code, same artifact and data: the same pictures as the committed ones.
    committed = json.loads((REPO / "models/m4-hourly/1/model.json").read_text())["files"]
    assert all(files[name] == committed[name] for name in written)
