"""training/onnx_slim.py: lossless rewrites, checked against the committed graphs they were applied to."""

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from training.onnx_slim import (
    DATA_SUFFIX,
    check_feeds,
    lookup_tables,
    prune_unused_recurrent_outputs,
    slim_onnx,
    slim_version,
)

MODELS = Path(__file__).resolve().parents[2] / "models"


def _run(graph: Path | bytes, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    source = graph if isinstance(graph, bytes) else str(graph)
    session = ort.InferenceSession(source, providers=["CPUExecutionProvider"])
    return [np.asarray(out) for out in session.run(None, feeds)]


def _unslimmed(version_dir: Path) -> onnx.ModelProto:
    """The committed graph with its external data inlined and every LSTM output named again, as the
    exporter wrote it."""
    model = onnx.load(str(version_dir / "model.onnx"))
    for node in model.graph.node:
        if node.op_type == "LSTM":
            while len(node.output) < 3:
                node.output.append("")
            for i, name in enumerate(node.output):
                if not name:
                    node.output[i] = f"{node.name}_unused_{i}"
    return model


@pytest.mark.parametrize("name", ["m4-hourly-ensemble/2", "sst2-distilled/1"])
def test_committed_graphs_are_slim_and_answer_as_before(tmp_path: Path, name: str) -> None:
    version_dir = MODELS / name
    committed = onnx.load(str(version_dir / "model.onnx"), load_external_data=False)
    readers = {i for node in committed.graph.node for i in node.input} | {
        o.name for o in committed.graph.output
    }
    lstm_outputs = [o for node in committed.graph.node if node.op_type == "LSTM" for o in node.output]
    assert lstm_outputs and all(not o or o in readers for o in lstm_outputs)

    # Undo the slimming, slim again: the rewrite finds what it removed and changes no output.
    wide = _unslimmed(version_dir)
    path = tmp_path / "model.onnx"
    onnx.save_model(wide, str(path))
    feeds = check_feeds(json.loads((version_dir / "model.json").read_text()))
    before = _run(path.read_bytes(), feeds)
    report = slim_onnx(path)
    assert report.pruned_outputs == sum(1 for o in lstm_outputs if not o) + sum(
        3 - len(node.output) for node in committed.graph.node if node.op_type == "LSTM"
    )
    for got, want in zip(_run(path, feeds), before, strict=True):
        np.testing.assert_array_equal(got, want)
    assert _run(path, feeds)[0].tobytes() == _run(version_dir / "model.onnx", feeds)[0].tobytes()


def test_lookup_table_moves_out_and_is_mapped_from_the_file(tmp_path: Path) -> None:
    version_dir = MODELS / "sst2-distilled" / "1"
    committed = onnx.load(str(version_dir / "model.onnx"), load_external_data=False)
    external = [t.name for t in committed.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    assert external == ["embedding.weight"]
    manifest = json.loads((version_dir / "model.json").read_text())
    assert "model.onnx.data" in manifest["files"]
    # The weights of the LSTM stay in the graph: ORT repacks them into its own buffers anyway.
    inline = onnx.load(str(version_dir / "model.onnx"))
    assert [t.name for t in lookup_tables(inline)] == ["embedding.weight"]
    assert all(
        t.name == "embedding.weight" or t.data_location != onnx.TensorProto.EXTERNAL
        for t in committed.graph.initializer
    )


def test_nothing_to_slim_leaves_the_file_byte_for_byte(tmp_path: Path) -> None:
    source = MODELS / "shakespeare-char" / "1" / "model.onnx"
    path = tmp_path / "model.onnx"
    shutil.copy(source, path)
    report = slim_onnx(path)
    assert (report.pruned_outputs, report.external_tensors) == (0, [])
    assert path.read_bytes() == source.read_bytes()
    assert not path.with_name(path.name + DATA_SUFFIX).exists()


def test_prune_keeps_outputs_that_are_read() -> None:
    model = _unslimmed(MODELS / "m4-hourly" / "1")
    named = sum(1 for n in model.graph.node if n.op_type == "LSTM" for o in n.output if o)
    pruned = prune_unused_recurrent_outputs(model)
    read = {i for n in model.graph.node for i in n.input}
    kept = [o for n in model.graph.node if n.op_type == "LSTM" for o in n.output if o]
    assert kept and all(o in read for o in kept)
    assert pruned == named - len(kept)


def test_slim_version_refreshes_the_manifest_and_keeps_the_data_file_readable(tmp_path: Path) -> None:
    target = tmp_path / "sst2" / "1"
    shutil.copytree(MODELS / "sst2-distilled" / "1", target)
    (target / "model.onnx.data").unlink()
    onnx.save_model(_unslimmed(MODELS / "sst2-distilled" / "1"), str(target / "model.onnx"))
    record = slim_version(target)
    assert record["external_tensors"] == ["embedding.weight"] and record["pruned_recurrent_outputs"] == 4
    manifest = json.loads((target / "model.json").read_text())
    data = target / "model.onnx.data"
    assert manifest["files"]["model.onnx.data"]["bytes"] == data.stat().st_size == 11579 * 384 * 4
    assert data.stat().st_mode & 0o044 == 0o044  # group and others may read it, as the graph
    with pytest.raises(ValueError, match="already has external data"):
        slim_version(target)
