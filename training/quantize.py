"""``python -m training quantize SRC --out DST``: an int8 variant of a committed model version.

The fp32 ``model.onnx`` of SRC goes through ``onnxruntime.quantization.quantize_dynamic`` (int8
weights; activations quantized to uint8 at run time). Several settings are tried: weight type
QInt8/QUInt8, per-channel on/off, and the scope (every op the quantizer supports, or the LSTMs
only). The winner is the one whose outputs stay closest to the fp32 graph on real *unlabelled*
inputs (training series for the forecaster, ``glue_dev`` texts for the sentiment model), so no
test label takes part in the choice. Then, in DST:

- ``model.onnx`` (int8) and the other artifacts of SRC except ``model.onnx`` and ``*.pt``;
- ``model.json``: the SRC manifest with a new ``version``, a ``quantization`` block (settings,
  candidates, source version and sha256), ``evaluation`` re-measured on the int8 graph with the same
  code that scored SRC, ``parity`` against the fp32 graph, ``batch_invariance``, and a
  ``quality_gate``; ``default`` at the top level is the gate's verdict and batch invariance within
  1e-5 (policy "quality+batch-invariance", the default), or the gate's verdict alone with
  ``--default-policy quality``.

Gates (issue 4): forecaster OWA <= 1.01 x fp32 OWA; sentiment test_labeled accuracy >= fp32 - 0.3
points. The fp32 side of each gate is the number recorded in the SRC manifest.

Dynamic quantization picks one activation scale per tensor, i.e. per *batch*: an int8 model's answer
for a row depends slightly on the other rows of its batch. ``batch_invariance`` records how much.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import onnx
import onnxruntime as ort
from onnxruntime.quantization import QuantType, quantize_dynamic

from training.manifest import sha256_file, write_manifest
from training.onnx_slim import DATA_SUFFIX, slim_onnx

# The checks live in quantize_checks (measurement vs. production of the int8 file); they are
# re-exported here because callers and tests import them from training.quantize.
from training.quantize_checks import (
    BATCH_INVARIANCE_RTOL,
    FIDELITY_BATCH,
    FORECAST_OWA_FACTOR,
    SENTIMENT_ACCURACY_POINTS,
    Feeds,
    ForecastTask,
    SentimentTask,
    TaskAdapter,
    batch_invariance,
    forecast_data_files,
    forecast_gate,
    parity_vs_reference,
    relative_l1,
    sentiment_gate,
    task_adapter,
)

__all__ = [
    "BATCH_INVARIANCE_RTOL",
    "DEFAULT_POLICIES",
    "FIDELITY_BATCH",
    "FORECAST_OWA_FACTOR",
    "METHOD",
    "QUANTIZED_OPS",
    "SCOPES",
    "SENTIMENT_ACCURACY_POINTS",
    "WEIGHT_TYPES",
    "Candidate",
    "Feeds",
    "ForecastTask",
    "SentimentTask",
    "TaskAdapter",
    "batch_invariance",
    "candidates",
    "choose",
    "forecast_data_files",
    "forecast_gate",
    "graph_ops",
    "parity_vs_reference",
    "quantize_file",
    "quantize_version",
    "relative_l1",
    "sentiment_gate",
    "task_adapter",
]

log = logging.getLogger(__name__)

METHOD = "onnxruntime.quantization.quantize_dynamic"
WEIGHT_TYPES = ("QInt8", "QUInt8")
# Scope name -> op types handed to the quantizer (None: every op type it supports).
SCOPES: dict[str, tuple[str, ...] | None] = {"all": None, "lstm": ("LSTM",)}
# Ops that only exist in a graph the quantizer has rewritten.
QUANTIZED_OPS = frozenset(
    {
        "DynamicQuantizeLSTM",
        "DynamicQuantizeLinear",
        "DynamicQuantizeMatMul",
        "MatMulInteger",
        "ConvInteger",
        "QLinearMatMul",
        "QLinearConv",
        "QuantizeLinear",
        "DequantizeLinear",
    }
)
# How the manifest's top-level "default" follows from the checks.
DEFAULT_POLICIES = {
    "quality": "default = quality_gate.passed",
    "quality+batch-invariance": "default = quality_gate.passed and batch_invariance.passed",
}
# Top-level manifest keys that describe the source artifact itself, so are not copied from it.
_NOT_INHERITED = frozenset(
    {"schema_version", "files", "parity", "default", "default_policy", "quantization", "quality_gate"}
    | {"batch_invariance"}
)


@dataclass(frozen=True)
class Candidate:
    weight_type: str  # a QuantType member name: "QInt8" or "QUInt8"
    per_channel: bool
    scope: str  # a key of SCOPES

    @property
    def label(self) -> str:
        return f"{self.weight_type}/{'per-channel' if self.per_channel else 'per-tensor'}/{self.scope}"


def candidates(
    weight_types: Sequence[str] = WEIGHT_TYPES,
    per_channel: Sequence[bool] = (False, True),
    scopes: Sequence[str] = tuple(SCOPES),
) -> list[Candidate]:
    """Every combination, in a fixed order (the first one wins ties)."""
    return [Candidate(w, p, s) for s in scopes for w in weight_types for p in per_channel]


@contextmanager
def _quiet_quantizer() -> Iterator[None]:
    """quantize_dynamic logs a 'consider pre-processing' warning on the root logger every call."""

    def keep(record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()

    root = logging.getLogger()
    root.addFilter(keep)
    try:
        yield
    finally:
        root.removeFilter(keep)


def quantize_file(src: Path, dst: Path, cand: Candidate) -> None:
    if cand.weight_type not in WEIGHT_TYPES or cand.scope not in SCOPES:
        raise ValueError(f"unknown candidate {cand}")
    ops = SCOPES[cand.scope]
    with _quiet_quantizer():
        quantize_dynamic(
            src,
            dst,
            op_types_to_quantize=list(ops) if ops is not None else None,
            per_channel=cand.per_channel,
            reduce_range=False,
            weight_type=QuantType[cand.weight_type],
        )


def graph_ops(path: Path) -> set[str]:
    return {node.op_type for node in onnx.load(str(path)).graph.node}


def _check_source(src_dir: Path, manifest: dict[str, Any]) -> None:
    for name, meta in manifest["files"].items():
        if sha256_file(src_dir / name) != meta["sha256"]:
            raise ValueError(f"{src_dir / name}: sha256 differs from {src_dir / 'model.json'}")


def _prepare_out(out: Path, force: bool) -> int:
    if not out.name.isdigit():
        raise ValueError(f"{out}: the version folder must be named by an integer")
    if out.exists() and any(out.iterdir()):
        if not force:
            raise FileExistsError(f"{out} is not empty (use --force to replace it)")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    return int(out.name)


def choose(
    src_onnx: Path, feeds: list[Feeds], cands: Sequence[Candidate], work: Path
) -> tuple[Candidate, list[dict[str, object]]]:
    """Quantize with every candidate; keep the one closest to fp32 (first one on ties)."""
    scored: list[tuple[float, Candidate]] = []
    report: list[dict[str, object]] = []
    for i, cand in enumerate(cands):
        path = work / f"candidate{i}.onnx"
        quantize_file(src_onnx, path, cand)
        err = relative_l1(src_onnx, path, feeds)
        log.info("candidate %-28s relative L1 vs fp32 %.3e", cand.label, err)
        scored.append((err, cand))
        report.append({**asdict(cand), "relative_l1_vs_fp32": err})
    best = min(scored, key=lambda sc: sc[0])[1]
    return best, report


def quantize_version(
    src_dir: Path,
    out: Path,
    cands: Sequence[Candidate] | None = None,
    force: bool = False,
    default_policy: str = "quality+batch-invariance",
) -> dict[str, object]:
    """Build DST from SRC (see the module docstring); returns the manifest written."""
    if default_policy not in DEFAULT_POLICIES:
        raise ValueError(f"default_policy must be one of {sorted(DEFAULT_POLICIES)}")
    src_manifest: dict[str, Any] = json.loads((src_dir / "model.json").read_text())
    _check_source(src_dir, src_manifest)
    cands = list(cands) if cands else candidates()
    version = _prepare_out(out, force)
    adapter = task_adapter(src_manifest, src_dir)
    src_onnx = src_dir / "model.onnx"

    with tempfile.TemporaryDirectory() as tmp:
        best, report = choose(src_onnx, adapter.fidelity_feeds(), cands, Path(tmp))
    log.info("chose %s", best.label)
    dst_onnx = out / "model.onnx"
    quantize_file(src_onnx, dst_onnx, best)
    slim_onnx(dst_onnx)  # the quantizer writes one inline graph; it ships slim like every export
    ops = graph_ops(dst_onnx)
    if not ops & QUANTIZED_OPS:
        raise RuntimeError(f"the quantizer left no quantized op in the graph; ops: {sorted(ops)}")
    for name in src_manifest["files"]:
        # The drift profile and the evaluation report describe the source's own outputs; the int8
        # version gets its own (python -m training profile-data / report), so neither is copied.
        per_version = name == "profile.json" or name.startswith("report")
        graph_files = ("model.onnx", "model.onnx" + DATA_SUFFIX)  # the int8 graph has its own
        if name not in graph_files and not name.endswith(".pt") and not per_version:
            shutil.copy2(src_dir / name, out / name)

    evaluation = adapter.evaluate(out)
    # Keep what the source recorded beside its scores (published anchors, how it was evaluated).
    recorded = src_manifest["evaluation"]
    evaluation = {**{k: v for k, v in recorded.items() if k not in evaluation}, **evaluation}
    gate = adapter.gate(src_manifest["evaluation"], evaluation)
    reference = f"{src_manifest['name']} v{src_manifest['version']} model.onnx (fp32), onnxruntime CPU"
    parity = parity_vs_reference(src_onnx, dst_onnx, adapter.parity_cases(), reference)
    inv_feeds, trim = adapter.invariance_feeds()
    int8_invariance = batch_invariance(dst_onnx, inv_feeds, trim)
    invariance = {
        "rows": len(next(iter(inv_feeds.values()))),
        "what": "each row run alone vs inside one batch of real inputs",
        "int8": int8_invariance,
        "fp32": batch_invariance(src_onnx, inv_feeds, trim),
        "rule": f"int8 max_rel_diff <= {BATCH_INVARIANCE_RTOL}",
        "passed": bool(int8_invariance["max_rel_diff"] <= BATCH_INVARIANCE_RTOL),
    }
    default = bool(gate["passed"]) and (default_policy == "quality" or bool(invariance["passed"]))
    manifest: dict[str, object] = {k: v for k, v in src_manifest.items() if k not in _NOT_INHERITED}
    manifest["version"] = version  # keeps its place after "name"
    described = src_manifest.get("description") or ""
    manifest["description"] = f"{described} int8 weights (dynamic quantization).".strip()
    manifest |= {
        "default": default,
        "default_policy": {"policy": default_policy, "rule": DEFAULT_POLICIES[default_policy]},
        "quantization": {
            "method": METHOD,
            "weight_type": best.weight_type,
            "activation_type": "QUInt8 (dynamic: one scale per tensor, computed per batch at run time)",
            "per_channel": best.per_channel,
            "reduce_range": False,
            "scope": best.scope,
            "op_types_to_quantize": list(SCOPES[best.scope] or ["all the quantizer supports"]),
            "quantized_ops": sorted(ops & QUANTIZED_OPS),
            "onnxruntime": ort.__version__,
            "source": {
                "name": src_manifest["name"],
                "version": src_manifest["version"],
                "model_onnx_sha256": src_manifest["files"]["model.onnx"]["sha256"],
            },
            "selection": {
                "criterion": "smallest relative L1 distance to the fp32 outputs on unlabelled inputs "
                "(forecast: training series; sentiment: glue_dev texts); no test label is used",
                "candidates": report,
            },
        },
        "evaluation": evaluation,
        "quality_gate": gate,
        "parity": parity,
        "batch_invariance": invariance,
    }
    write_manifest(out, manifest)
    verdict = ("PASSED" if gate["passed"] else "FAILED") + (", default" if default else ", not default")
    log.info(
        "quality gate %s: %s int8 %s vs fp32 %s (threshold %s)",
        verdict,
        gate["metric"],
        gate["int8"],
        gate["fp32"],
        gate["threshold"],
    )
    print(json.dumps({"out": str(out), "quantization": best.label, "quality_gate": gate}, indent=2))
    return manifest
