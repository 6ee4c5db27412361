"""``python -m training profile-data``: the committed profiles are reproducible and registered correctly."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from service.runtime.manifest import load_manifest, verify_files
from training.__main__ import main

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "version", ["sst2-bilstm/2", "m4-hourly/1", "m4-hourly-ensemble/1", "m4-hourly-ensemble/2"]
)
def test_profile_data_reproduces_the_committed_profile(version: str, tmp_path: Path) -> None:
    source = REPO / "models" / version
    target = tmp_path / version
    shutil.copytree(source, target)
    before = json.loads((target / "model.json").read_text())
    (target / "profile.json").unlink()
    # A manifest as it was before profiling: no drift entry, no profile in files.
    stripped = {k: v for k, v in before.items() if k != "drift"}
    stripped["files"] = {k: v for k, v in before["files"].items() if k != "profile.json"}
    (target / "model.json").write_text(json.dumps(stripped, indent=2) + "\n")

    assert main(["profile-data", str(target)]) == 0

    assert (target / "profile.json").read_bytes() == (source / "profile.json").read_bytes()
    after = json.loads((target / "model.json").read_text())
    assert after == before  # the two entries added, nothing else touched
    assert after["drift"] == {"profile": "profile.json"}
    verify_files(target, load_manifest(target))  # the checksums cover the profile
