"""ONNX export with a structural check and a torch-vs-ONNX Runtime parity check."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from training.onnx_slim import slim_onnx


def export_onnx(
    model: nn.Module,
    example: tuple[torch.Tensor, ...],
    path: Path,
    input_names: list[str],
    output_names: list[str],
    dynamic_axes: dict[str, dict[int, str]],
) -> None:
    """Export with the TorchScript-based exporter and check the graph.

    ``dynamo=False`` on purpose: it emits fused ONNX ``LSTM`` nodes with truly dynamic batch
    and time axes, whereas the dynamo exporter was seen to fix the sequence axis and to
    produce an LSTM that onnxruntime's quantizer cannot handle.
    """
    model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about shape-dependent Python ints
        torch.onnx.export(
            model,
            example,
            str(path),
            input_names=input_names,
            output_names=output_names,
            dynamic_axes=dynamic_axes,
            opset_version=17,
            dynamo=False,
        )
    graph = onnx.load(str(path))
    onnx.checker.check_model(graph, full_check=True)
    ops = {node.op_type for node in graph.graph.node}
    if "LSTM" not in ops:
        raise RuntimeError(f"export did not produce a fused LSTM op; ops: {sorted(ops)}")
    # Lossless: every parity check below runs on the slimmed graph, the one that ships.
    slim_onnx(path)


def ort_session(path: Path) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def parity(model: nn.Module, path: Path, cases: list[tuple[str, dict[str, np.ndarray]]]) -> dict[str, object]:
    """Run each named input set through torch and ONNX Runtime; report the worst differences.

    Relative difference is |a-b| / max(|a|, 1e-6 * max|a|), so near-zero outputs do not blow it up.
    """
    sess = ort_session(path)
    worst_abs, worst_rel = 0.0, 0.0
    per_case = {}
    for name, feeds in cases:
        with torch.no_grad():
            expected = model(*[torch.from_numpy(v) for v in feeds.values()])
        got = sess.run(None, feeds)[0]
        ref = expected.numpy().astype(np.float64)
        diff = np.abs(ref - got)
        floor = max(1e-6 * float(np.abs(ref).max()), 1e-12)
        rel = diff / np.maximum(np.abs(ref), floor)
        per_case[name] = {"max_abs_diff": float(diff.max()), "max_rel_diff": float(rel.max())}
        worst_abs = max(worst_abs, float(diff.max()))
        worst_rel = max(worst_rel, float(rel.max()))
    return {"max_abs_diff": worst_abs, "max_rel_diff": worst_rel, "cases": per_case}
