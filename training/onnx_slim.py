"""Lossless rewrites of an exported graph that lower what ONNX Runtime holds in each worker.

Both leave every output bitwise the same; only what is allocated, and where weights live, changes.

- **Unused optional outputs of recurrent nodes are dropped.** ORT allocates and fills every output a
  node names, read or not. The exporter names all three outputs of each ``LSTM``: the forecasters'
  top layer filled its whole (time x batch x hidden) sequence for nobody, and the 5-member ensemble
  at batch 64 grew ORT's arena by 80 MB instead of 46 MB (docs/memory.md).
- **Lookup tables move to ``model.onnx.data``** beside the graph: initializers read only by
  ``Gather``, of at least ``min_bytes``, such as the sentiment models' 17.8 MB word embedding. ORT maps
  external data from the file instead of copying it onto the heap, so a worker holds only the rows
  that requests have looked up, and the workers share those pages. Weights that feed ``LSTM`` or
  ``Gemm`` stay inside the graph: ORT repacks them into its own buffers anyway, and mapped originals
  would only add resident file pages.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnx.external_data_helper import set_external_data

from training.manifest import file_entries

# DynamicQuantizeLSTM: the int8 LSTM of onnxruntime.quantization, with the same three outputs.
RECURRENT_OPS = frozenset({"LSTM", "GRU", "RNN", "DynamicQuantizeLSTM"})
DATA_SUFFIX = ".data"
LOOKUP_MIN_BYTES = 1 << 20


@dataclass
class SlimReport:
    pruned_outputs: int = 0
    external_tensors: list[str] = field(default_factory=list)
    external_bytes: int = 0

    def to_dict(self) -> dict[str, object]:
        return {
            "pruned_recurrent_outputs": self.pruned_outputs,
            "external_tensors": self.external_tensors,
            "external_bytes": self.external_bytes,
        }


def prune_unused_recurrent_outputs(model: onnx.ModelProto) -> int:
    """Empty the names of recurrent outputs that no node and no graph output reads; returns how many."""
    graph = model.graph
    read = {name for node in graph.node for name in node.input} | {out.name for out in graph.output}
    pruned: set[str] = set()
    for node in graph.node:
        if node.op_type not in RECURRENT_OPS:
            continue
        for i, name in enumerate(node.output):
            if name and name not in read:
                node.output[i] = ""
                pruned.add(name)
        # Trailing empty names are the same as absent ones; ORT's checker prefers them absent.
        while len(node.output) and node.output[-1] == "":
            node.output.pop()
    # Shape annotations of what is gone: a graph slimmed after the fact must equal one built slim.
    kept = [info for info in graph.value_info if info.name not in pruned]
    del graph.value_info[:]
    graph.value_info.extend(kept)
    return len(pruned)


def lookup_tables(model: onnx.ModelProto, min_bytes: int = LOOKUP_MIN_BYTES) -> list[onnx.TensorProto]:
    """Initializers of at least ``min_bytes`` that only ``Gather`` nodes read, as their data input."""
    readers: dict[str, set[tuple[str, int]]] = {}
    for node in model.graph.node:
        for i, name in enumerate(node.input):
            readers.setdefault(name, set()).add((node.op_type, i))
    graph_outputs = {out.name for out in model.graph.output}
    return [
        tensor
        for tensor in model.graph.initializer
        if len(tensor.raw_data) >= min_bytes
        and tensor.name not in graph_outputs
        and readers.get(tensor.name) == {("Gather", 0)}
    ]


def slim_onnx(path: Path, min_bytes: int = LOOKUP_MIN_BYTES) -> SlimReport:
    """Rewrite ``path`` in place (and write ``<path>.data`` when a lookup table moves out)."""
    model = onnx.load(str(path))
    report = SlimReport(pruned_outputs=prune_unused_recurrent_outputs(model))
    data_path = path.with_name(path.name + DATA_SUFFIX)
    data_path.unlink(missing_ok=True)  # a stale file would be appended to, not replaced
    for tensor in lookup_tables(model, min_bytes):
        report.external_tensors.append(tensor.name)
        report.external_bytes += len(tensor.raw_data)
        set_external_data(tensor, location=data_path.name)
        tensor.data_location = onnx.TensorProto.EXTERNAL
    if not (report.pruned_outputs or report.external_tensors):
        return report  # nothing to change: the file stays byte for byte as exported
    onnx.save_model(model, str(path))
    onnx.checker.check_model(str(path), full_check=True)
    if data_path.exists():
        # onnx creates the data file readable by its owner only; the graph beside it is world-readable,
        # and the images run the service as another user than the one who exported.
        os.chmod(data_path, path.stat().st_mode & 0o777)
    return report


def check_feeds(manifest: dict[str, Any], rows: int = 3) -> dict[str, np.ndarray]:
    """Inputs for the identical-output check, from the manifest: ``rows`` rows, ``context_length``
    steps (24 when the task has none); a dynamic axis is the batch where it is the first one, or the
    second of a recurrent state (layers x batch x hidden). Ids stay below the vocabulary, lengths fill
    every step, and values are positive, since the forecasters take logs."""
    rng = np.random.default_rng(0)
    params = manifest.get("parameters", {})
    vocab = int(params.get("vocab_size", 2))
    steps = int(params.get("context_length", 24))
    feeds: dict[str, np.ndarray] = {}
    for spec in manifest["inputs"]:
        shape = spec["shape"]
        batch_axis = 1 if len(shape) == 3 and shape[0] > 0 else 0
        dims = [d if d > 0 else (rows if i == batch_axis else steps) for i, d in enumerate(shape)]
        if spec["datatype"] == "FP32":
            feeds[spec["name"]] = rng.uniform(1.0, 100.0, dims).astype(np.float32)
        elif spec["name"] == "lengths":
            feeds[spec["name"]] = np.full(dims, steps, dtype=np.int64)
        else:
            feeds[spec["name"]] = rng.integers(0, vocab, dims).astype(np.int64)
    return feeds


def _outputs(graph: Path | bytes, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(
        graph if isinstance(graph, bytes) else str(graph), options, providers=["CPUExecutionProvider"]
    )
    return [np.asarray(out) for out in session.run(None, feeds)]


def slim_version(version_dir: Path) -> dict[str, object]:
    """Slim a committed version in place, prove its outputs unchanged, refresh its manifest's files."""
    manifest_path = version_dir / "model.json"
    manifest = json.loads(manifest_path.read_text())
    graph = version_dir / "model.onnx"
    if (version_dir / (graph.name + DATA_SUFFIX)).exists():
        raise ValueError(f"{version_dir}: already has external data; re-export instead")
    before_bytes = graph.read_bytes()
    feeds = check_feeds(manifest)
    before = _outputs(before_bytes, feeds)
    report = slim_onnx(graph)
    if not (report.pruned_outputs or report.external_tensors):
        return report.to_dict()
    after = _outputs(graph, feeds)
    if len(before) != len(after) or not all(
        a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True)
        for a, b in zip(before, after, strict=True)
    ):
        graph.write_bytes(before_bytes)
        graph.with_name(graph.name + DATA_SUFFIX).unlink(missing_ok=True)
        raise RuntimeError(f"{version_dir}: outputs changed after slimming; original restored")
    record = {
        # What earlier provenance (an int8 variant's source, say) refers to.
        "model_onnx_sha256_before": manifest["files"]["model.onnx"]["sha256"],
        **report.to_dict(),
        "outputs_identical_on": {k: list(v.shape) for k, v in feeds.items()},
    }
    manifest.pop("files", None)
    manifest["onnx_slim"] = record  # beside "training": an int8 variant keeps its source's training block
    manifest["files"] = file_entries(version_dir)
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return record
