"""Writes ``model.json``, the only contract between training and the service."""

from __future__ import annotations

import hashlib
import json
import platform
from pathlib import Path
from typing import Any

MANIFEST_SCHEMA_VERSION = 1


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def tensor_spec(name: str, datatype: str, shape: list[int]) -> dict[str, Any]:
    """Triton-style spec: datatype like FP32/INT64, -1 marks a dynamic axis."""
    return {"name": name, "datatype": datatype, "shape": shape}


def library_versions() -> dict[str, str]:
    import numpy
    import onnx
    import onnxruntime
    import torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "numpy": numpy.__version__,
    }


def data_provenance(paths: list[Path], root: Path) -> list[dict[str, str]]:
    return [{"path": str(p.resolve().relative_to(root.resolve())), "sha256": sha256_file(p)} for p in paths]


def file_entries(version_dir: Path) -> dict[str, dict[str, Any]]:
    """sha256 and size of every artifact in the folder but the manifest itself."""
    return {
        p.name: {"sha256": sha256_file(p), "bytes": p.stat().st_size}
        for p in sorted(version_dir.iterdir())
        if p.is_file() and p.name != "model.json"
    }


def write_manifest(version_dir: Path, manifest: dict[str, Any]) -> Path:
    """Add checksums of every artifact in the folder and write the manifest last."""
    body = {"schema_version": MANIFEST_SCHEMA_VERSION, **manifest, "files": file_entries(version_dir)}
    out = version_dir / "model.json"
    out.write_text(json.dumps(body, indent=2, sort_keys=False) + "\n")
    return out
