"""Every shipped LSTM, recomputed from its ONNX weights with a textbook NumPy LSTM cell.

For each ``models/<name>/<version>/model.onnx`` the graph is run by ONNX Runtime on inputs built from
its manifest, with the inputs and outputs of every LSTM node exposed as extra graph outputs (the graph
cut at the LSTM). The LSTM's outputs are then recomputed here from its input X, its initial state and
the weights read from the ONNX initializers, without torch: this checks the exported gate order
(ONNX: input, output, forget, cell) and bias handling (Wb + Rb) independently of the exporter.

The float LSTMs must match to 1e-5. The int8 variants use ``com.microsoft.DynamicQuantizeLSTM``,
which also quantizes X and h to uint8 at run time; the reference uses the dequantized int8 weights
with float activations, so it can only agree to the activation-quantization error (checked at a
looser bound, still far below what a wrong gate order or a dropped bias gives).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

REPO = Path(__file__).resolve().parents[2]
VERSION_DIRS = sorted(p.parent for p in REPO.glob("models/*/*/model.onnx"))
FLOAT_TOLERANCE = 1e-5
INT8_TOLERANCE = 0.02


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def reference_lstm(
    x: np.ndarray,
    w: np.ndarray,
    r: np.ndarray,
    b: np.ndarray,
    h0: np.ndarray,
    c0: np.ndarray,
    seq_lens: np.ndarray,
    direction: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ONNX LSTM semantics (layout 0) in float64.

    x [T, B, I]; w [D, 4H, I]; r [D, 4H, H]; b [D, 8H] = [Wb, Rb]; gate blocks in i, o, f, c order.
    Returns Y [T, D, B, H], Y_h [D, B, H], Y_c [D, B, H]. A row stops at its sequence length: later
    outputs are zero and its final state is the state at its last real step.
    """
    steps, batch, _ = x.shape
    dirs, four_h, _ = w.shape
    hidden = four_h // 4
    y = np.zeros((steps, dirs, batch, hidden))
    y_h = np.zeros((dirs, batch, hidden))
    y_c = np.zeros((dirs, batch, hidden))
    rows = np.arange(batch)
    for d in range(dirs):
        reverse = direction == "reverse" or (direction == "bidirectional" and d == 1)
        w_i, w_o, w_f, w_c = np.split(w[d], 4)
        r_i, r_o, r_f, r_c = np.split(r[d], 4)
        wb_i, wb_o, wb_f, wb_c, rb_i, rb_o, rb_f, rb_c = np.split(b[d], 8)
        h, c = h0[d].astype(np.float64), c0[d].astype(np.float64)
        for step in range(steps):
            active = step < seq_lens
            t = np.where(active, seq_lens - 1 - step, 0) if reverse else np.full(batch, step)
            x_t = x[t, rows]
            input_gate = sigmoid(x_t @ w_i.T + h @ r_i.T + wb_i + rb_i)
            output_gate = sigmoid(x_t @ w_o.T + h @ r_o.T + wb_o + rb_o)
            forget_gate = sigmoid(x_t @ w_f.T + h @ r_f.T + wb_f + rb_f)
            candidate = np.tanh(x_t @ w_c.T + h @ r_c.T + wb_c + rb_c)
            c_new = forget_gate * c + input_gate * candidate
            h_new = output_gate * np.tanh(c_new)
            c = np.where(active[:, None], c_new, c)
            h = np.where(active[:, None], h_new, h)
            y[t[active], d, rows[active]] = h_new[active]
        y_h[d], y_c[d] = h, c
    return y, y_h, y_c


def feeds_for(manifest: dict[str, Any], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Inputs of the right names, types and shapes: the first dynamic axis is the batch, the second time."""
    params = manifest.get("parameters", {})
    batch, steps = 3, int(params.get("context_length") or 24)
    feeds = {}
    for spec in manifest["inputs"]:
        dynamic = iter((batch, steps))
        shape = [next(dynamic) if s == -1 else s for s in spec["shape"]]
        name = spec["name"]
        if spec["datatype"] == "INT64" and name == "lengths":
            feeds[name] = rng.integers(1, steps + 1, size=shape).astype(np.int64)
        elif spec["datatype"] == "INT64":
            feeds[name] = rng.integers(0, int(params["vocab_size"]), size=shape).astype(np.int64)
        elif name == "sequences":
            feeds[name] = rng.uniform(params["value_min"], params["value_max"], size=shape).astype(np.float32)
        elif name == "values":
            feeds[name] = rng.uniform(10.0, 1000.0, size=shape).astype(np.float32)
        else:
            feeds[name] = (0.5 * rng.standard_normal(shape)).astype(np.float32)
    return feeds


def lstm_nodes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    return [n for n in model.graph.node if n.op_type in ("LSTM", "DynamicQuantizeLSTM")]


def attributes(node: onnx.NodeProto) -> dict[str, Any]:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def weights(node: onnx.NodeProto, inits: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """W [D, 4H, I] and R [D, 4H, H] in float64, dequantized for DynamicQuantizeLSTM."""
    if node.op_type == "LSTM":
        return inits[node.input[1]].astype(np.float64), inits[node.input[2]].astype(np.float64)
    out = []
    # DynamicQuantizeLSTM: W [D, I, 4H] int8 with scale/zero point per direction (or per column).
    for q_name, s_name, z_name in ((1, 8, 9), (2, 10, 11)):
        q = inits[node.input[q_name]].astype(np.float64)
        scale = inits[node.input[s_name]].astype(np.float64).reshape(q.shape[0], 1, -1)
        zero = inits[node.input[z_name]].astype(np.float64).reshape(q.shape[0], 1, -1)
        out.append(np.transpose((q - zero) * scale, (0, 2, 1)))
    return out[0], out[1]


def optional_input(
    node: onnx.NodeProto,
    index: int,
    inits: dict[str, np.ndarray],
    values: dict[str, np.ndarray],
    default: np.ndarray,
) -> np.ndarray:
    name = node.input[index] if len(node.input) > index else ""
    if not name:
        return default
    return inits[name] if name in inits else values[name]


def run_with_lstm_tensors(
    path: Path, feeds: dict[str, np.ndarray]
) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """Run the model with every LSTM node's inputs and outputs added as graph outputs."""
    model = onnx.load(str(path))
    graph_outputs = {o.name for o in model.graph.output}
    inits = {i.name for i in model.graph.initializer}
    wanted = []
    for node in lstm_nodes(model):
        for name in [node.input[0], *node.input[4:7], *node.output]:
            if name and name not in inits and name not in graph_outputs and name not in feeds:
                wanted.append(name)
    for name in dict.fromkeys(wanted):
        model.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    values = dict(zip(names, sess.run(names, feeds), strict=True))
    values.update(feeds)
    return model, values


@pytest.mark.parametrize("version_dir", VERSION_DIRS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_onnx_lstm_matches_a_textbook_numpy_cell(version_dir: Path):
    manifest = json.loads((version_dir / "model.json").read_text())
    feeds = feeds_for(manifest, np.random.default_rng(7))
    model, values = run_with_lstm_tensors(version_dir / "model.onnx", feeds)
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    nodes = lstm_nodes(model)
    assert nodes, "no LSTM node in the graph"
    for node in nodes:
        attrs = attributes(node)
        # Only the defaults are recomputed here: sigmoid/tanh/tanh, no clipping, no coupled gates.
        assert set(attrs) <= {"hidden_size", "direction", "layout"}, attrs
        assert attrs.get("layout", 0) == 0
        direction = attrs.get("direction", b"forward")
        direction = direction.decode() if isinstance(direction, bytes) else direction
        w, r = weights(node, inits)
        dirs, hidden = w.shape[0], attrs["hidden_size"]
        x = values[node.input[0]].astype(np.float64)
        steps, batch = x.shape[:2]

        b = optional_input(node, 3, inits, values, np.zeros((dirs, 8 * hidden))).astype(np.float64)
        seq_lens = optional_input(node, 4, inits, values, np.full(batch, steps)).astype(np.int64)
        h0 = optional_input(node, 5, inits, values, np.zeros((dirs, batch, hidden)))
        c0 = optional_input(node, 6, inits, values, np.zeros((dirs, batch, hidden)))
        y, y_h, y_c = reference_lstm(x, w, r, b, h0, c0, seq_lens, direction)
        tolerance = FLOAT_TOLERANCE if node.op_type == "LSTM" else INT8_TOLERANCE
        for name, ours in zip(node.output, (y, y_h, y_c), strict=False):
            if not name:
                continue
            theirs = values[name]
            assert theirs.shape == ours.shape, (node.name, name)
            diff = float(np.abs(theirs - ours).max())
            # Y and Y_h lie in (-1, 1), so this is 1e-5 absolute for them. The cell state Y_c is unbounded
            # (|c| reaches 70 in the ensemble's members on random inputs), and float32 keeps ~7 significant
            # digits over hundreds of steps: for it, 1e-5 is relative to its magnitude.
            scale = max(1.0, float(np.abs(ours).max()))
            assert diff <= tolerance * scale, (
                f"{version_dir}: {node.name} output {name} differs by {diff:.3g} (magnitude {scale:.3g})"
            )
        # The state really moved: a test on all-zero outputs would prove nothing.
        assert float(np.abs(y_h).max()) > 0.05


def test_reference_cell_covers_bidirectional_lstms_with_sequence_lengths():
    """No shipped model has a bidirectional node (sst2-bilstm reverses rows itself), so check the
    reverse direction and ragged lengths on a one-node graph built here."""
    rng = np.random.default_rng(3)
    steps, batch, inputs, hidden = 6, 3, 4, 5
    w = (0.5 * rng.standard_normal((2, 4 * hidden, inputs))).astype(np.float32)
    r = (0.5 * rng.standard_normal((2, 4 * hidden, hidden))).astype(np.float32)
    b = (0.5 * rng.standard_normal((2, 8 * hidden))).astype(np.float32)
    node = onnx.helper.make_node(
        "LSTM",
        ["X", "W", "R", "B", "L", "H0", "C0"],
        ["Y", "Y_h", "Y_c"],
        hidden_size=hidden,
        direction="bidirectional",
    )
    graph = onnx.helper.make_graph(
        [node],
        "bilstm",
        [
            onnx.helper.make_tensor_value_info("X", onnx.TensorProto.FLOAT, [steps, batch, inputs]),
            onnx.helper.make_tensor_value_info("L", onnx.TensorProto.INT32, [batch]),
            onnx.helper.make_tensor_value_info("H0", onnx.TensorProto.FLOAT, [2, batch, hidden]),
            onnx.helper.make_tensor_value_info("C0", onnx.TensorProto.FLOAT, [2, batch, hidden]),
        ],
        [onnx.helper.make_empty_tensor_value_info(n) for n in ("Y", "Y_h", "Y_c")],
        [numpy_helper.from_array(w, "W"), numpy_helper.from_array(r, "R"), numpy_helper.from_array(b, "B")],
    )
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)], ir_version=8)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = rng.standard_normal((steps, batch, inputs)).astype(np.float32)
    lens = np.array([6, 2, 4], dtype=np.int32)
    h0, c0 = (rng.standard_normal((2, batch, hidden)).astype(np.float32) for _ in range(2))
    theirs = sess.run(None, {"X": x, "L": lens, "H0": h0, "C0": c0})
    ours = reference_lstm(x, w, r, b, h0, c0, lens.astype(np.int64), "bidirectional")
    for got, want in zip(theirs, ours, strict=True):
        np.testing.assert_allclose(got, want, atol=FLOAT_TOLERANCE)
