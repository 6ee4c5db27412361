"""``python -m service describe DIR``: write the manifest of a bare ``model.onnx`` so it can be served.

Any ONNX model dropped into ``models/<name>/<version>/`` becomes servable over the Open Inference
Protocol with ``"task": "tensor"``. The tensor specs are read from the graph through onnxruntime
(symbolic or unknown dimensions become -1), and every file in the folder is checksummed, exactly as
training writes manifests, so the registry verifies it like any other version.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import onnxruntime as ort

from service.runtime.manifest import (
    MANIFEST_FILENAME,
    MODEL_FILENAME,
    ORT_ELEMENT_TYPES,
    ModelManifest,
    sha256_of,
)

_DATATYPES = {ort_type: datatype for datatype, ort_type in ORT_ELEMENT_TYPES.items()}


class DescribeError(Exception):
    """The folder cannot be described (no graph, an unsupported tensor type, a bad name)."""


def _spec(node: Any, kind: str) -> dict[str, Any]:
    datatype = _DATATYPES.get(node.type)
    if datatype is None:
        raise DescribeError(f"{kind} {node.name!r} has type {node.type}, which V2 cannot carry")
    shape = [dim if isinstance(dim, int) and dim > 0 else -1 for dim in node.shape]
    return {"name": node.name, "datatype": datatype, "shape": shape or [1]}


def describe(version_dir: Path, name: str | None = None, description: str | None = None) -> dict[str, Any]:
    """The manifest for ``version_dir`` (validated by the service's own manifest model)."""
    graph = version_dir / MODEL_FILENAME
    if not graph.is_file():
        raise DescribeError(f"{graph} is missing")
    if not version_dir.name.isdigit():
        raise DescribeError(f"{version_dir} must be a version folder: models/<name>/<integer>")
    session = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
    files = {
        path.name: {"sha256": sha256_of(path), "bytes": path.stat().st_size}
        for path in sorted(version_dir.iterdir())
        if path.is_file() and path.name != MANIFEST_FILENAME and not path.name.startswith(".")
    }
    manifest: dict[str, Any] = {
        "schema_version": 1,
        "name": name or version_dir.resolve().parent.name,
        "version": int(version_dir.name),
        "task": "tensor",
        "description": description or f"described from {MODEL_FILENAME} by python -m service describe",
        "inputs": [_spec(node, "input") for node in session.get_inputs()],
        "outputs": [_spec(node, "output") for node in session.get_outputs()],
        "parameters": {},
        "files": files,
    }
    ModelManifest.model_validate(manifest)
    return manifest


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m service describe", description=__doc__.splitlines()[0])
    parser.add_argument("version_dir", type=Path, help="models/<name>/<version> holding model.onnx")
    parser.add_argument("--name", default=None, help="model name (default: the parent folder's name)")
    parser.add_argument("--description", default=None)
    parser.add_argument("--force", action="store_true", help=f"overwrite an existing {MANIFEST_FILENAME}")
    args = parser.parse_args(argv)
    target = args.version_dir / MANIFEST_FILENAME
    if target.exists() and not args.force:
        print(f"{target} exists; pass --force to overwrite it")
        return 2
    try:
        manifest = describe(args.version_dir, args.name, args.description)
    except DescribeError as exc:
        print(f"cannot describe {args.version_dir}: {exc}")
        return 2
    target.write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"wrote {target}: {len(manifest['inputs'])} input(s), {len(manifest['outputs'])} output(s)")
    return 0
