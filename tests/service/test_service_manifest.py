import json
from pathlib import Path
from typing import Any

import pytest
from svc_helpers import MODEL_DIR, copy_model

from service.runtime.manifest import ManifestError, load_manifest, verify_files


def test_committed_manifest_loads_and_verifies() -> None:
    manifest = load_manifest(MODEL_DIR)
    assert manifest.schema_version == 1
    assert manifest.task == "forecast"
    assert "model.onnx" in manifest.files
    verify_files(MODEL_DIR, manifest)


def _write(tmp_path: Path, edit: Any) -> Path:
    repo = copy_model(tmp_path, edit)
    return repo / "m4-hourly" / "1"


@pytest.mark.parametrize(
    "edit, fragment",
    [
        (lambda m: m.pop("inputs"), "inputs"),
        (lambda m: m.pop("files"), "files"),
        (lambda m: m.update(schema_version=2), "schema_version"),
        (lambda m: m.update(version="1"), "version"),
        (lambda m: m["inputs"][0].update(datatype="FLOAT"), "datatype"),
        (lambda m: m["inputs"][0].update(shape=[-1, 0]), "shape"),
        (lambda m: m["inputs"][0].update(extra=1), "extra"),
        (lambda m: m["files"]["model.onnx"].update(sha256="XYZ"), "sha256"),
        (lambda m: m["files"].update({"../evil": {"sha256": "0" * 64, "bytes": 1}}), "plain name"),
        (lambda m: m["files"].pop("model.onnx"), "model.onnx"),
        (lambda m: m.update(outputs=[m["outputs"][0], m["outputs"][0]]), "unique"),
    ],
)
def test_malformed_manifest_rejected_with_clear_message(tmp_path: Path, edit: Any, fragment: str) -> None:
    version_dir = _write(tmp_path, edit)
    with pytest.raises(ManifestError, match="invalid manifest") as info:
        load_manifest(version_dir)
    assert fragment in str(info.value)


def test_missing_and_unparsable_manifest(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="missing"):
        load_manifest(tmp_path)
    (tmp_path / "model.json").write_text("{not json")
    with pytest.raises(ManifestError, match="unreadable"):
        load_manifest(tmp_path)


def test_unknown_top_level_keys_are_tolerated(tmp_path: Path) -> None:
    version_dir = _write(tmp_path, lambda m: m.update(created_by="training v2"))
    assert load_manifest(version_dir).name == "m4-hourly"


def test_checksum_mismatch(tmp_path: Path) -> None:
    version_dir = _write(tmp_path, None)
    onnx = version_dir / "model.onnx"
    data = bytearray(onnx.read_bytes())
    data[len(data) // 2] ^= 0xFF
    onnx.write_bytes(bytes(data))
    with pytest.raises(ManifestError, match="sha256 mismatch"):
        verify_files(version_dir, load_manifest(version_dir))


def test_size_mismatch_and_missing_file(tmp_path: Path) -> None:
    version_dir = _write(tmp_path, None)
    manifest = load_manifest(version_dir)
    with (version_dir / "model.onnx").open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ManifestError, match="size mismatch"):
        verify_files(version_dir, manifest)
    (version_dir / "model.onnx").unlink()
    with pytest.raises(ManifestError, match="missing"):
        verify_files(version_dir, manifest)


def test_extra_listed_file_is_checked(tmp_path: Path) -> None:
    # Files the service does not use (e.g. torch_state.pt) are still checksummed.
    def add(m: dict[str, Any]) -> None:
        m["files"]["torch_state.pt"] = {"sha256": "0" * 64, "bytes": 3}

    version_dir = _write(tmp_path, add)
    (version_dir / "torch_state.pt").write_bytes(b"abc")
    with pytest.raises(ManifestError, match=r"torch_state\.pt: sha256 mismatch"):
        verify_files(version_dir, load_manifest(version_dir))
    assert json.loads((version_dir / "model.json").read_text())["files"]["torch_state.pt"]


def test_serving_hint_must_be_a_positive_batch_size(tmp_path: Path) -> None:
    bad = _write(
        tmp_path, lambda m: m.update(serving={"preferred_batch_size": 0, "provider": "CPUExecutionProvider"})
    )
    with pytest.raises(ManifestError, match=r"serving\.preferred_batch_size"):
        load_manifest(bad)
    absent = load_manifest(_write(tmp_path / "absent", lambda m: m.pop("serving", None)))
    assert absent.serving.preferred_batch_size is None
    assert absent.serving.rows_per_run("CPUExecutionProvider") is None
