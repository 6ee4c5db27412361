"""``python -m training textgen``: train the character LSTM, export, parity, evaluate with ORT, manifest."""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from training.export import export_onnx, ort_session
from training.manifest import data_provenance, library_versions, tensor_spec, write_manifest
from training.models import CharLSTM
from training.textgen_train import TextgenConfig, load_text, stream_nats, train_textgen, unigram_nats

log = logging.getLogger(__name__)
REPO_ROOT = Path(__file__).resolve().parent.parent
SHAKESPEARE = REPO_ROOT / "training/data/tinyshakespeare/input.txt"
VOCAB_FILE = "vocab.json"
INPUT_NAMES = ["tokens", "h", "c"]
OUTPUT_NAMES = ["logits", "h_out", "c_out"]
# nanoGPT's 6-layer character transformer on the same 90/10 split (its README, shakespeare_char).
NANOGPT_VAL_NATS = 1.47
# The evaluate test re-scores this many validation characters against the manifest.
PREFIX_CHECK_CHARS = 2000


def onnx_stream_nats(
    sess: ort.InferenceSession, ids: np.ndarray, num_layers: int, hidden: int, chunk: int = 1000
) -> float:
    """Mean nats/char of ``ids[1:]`` given everything before, one stream from the zero state, from the
    served graph.

    The graph returns only the last step's logits, so every position needs a decode step. To keep
    that fast without changing what is measured: a first pass prefills the text chunk by chunk,
    carrying the state, which gives the exact state at every chunk start; a second pass then decodes
    all chunks side by side as one batch, each from its own start state.
    """
    n = len(ids) - 1  # positions scored
    starts = np.arange(0, n, chunk)
    h = np.zeros((num_layers, len(starts), hidden), dtype=np.float32)
    c = np.zeros_like(h)
    h1, c1 = h[:, :1].copy(), c[:, :1].copy()
    for j in range(1, len(starts)):
        _, h1, c1 = sess.run(OUTPUT_NAMES, {"tokens": ids[None, starts[j - 1] : starts[j]], "h": h1, "c": c1})
        h[:, j], c[:, j] = h1[:, 0], c1[:, 0]
    total = 0.0
    for step in range(chunk):
        pos = np.minimum(starts + step, n - 1)
        live = starts + step < n
        logits, h, c = sess.run(OUTPUT_NAMES, {"tokens": ids[pos].reshape(-1, 1), "h": h, "c": c})
        rows = logits[live].astype(np.float64)
        top = rows.max(axis=1, keepdims=True)
        log_z = top[:, 0] + np.log(np.exp(rows - top).sum(axis=1))
        total += float((log_z - rows[np.arange(len(rows)), ids[pos[live] + 1]]).sum())
    return total / n


def scoring_session(path: Path) -> ort.InferenceSession:
    """No spinning threads: scoring is thousands of small calls on a shared machine."""
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def evaluate_onnx(version_dir: Path, valid: np.ndarray, limit: int | None = None) -> float:
    params = json.loads((version_dir / "model.json").read_text())["parameters"]
    sess = scoring_session(version_dir / "model.onnx")
    ids = valid if limit is None else valid[: limit + 1]
    return onnx_stream_nats(sess, ids, params["num_layers"], params["hidden_size"])


def parity_cases(model: CharLSTM, valid: np.ndarray, seed: int) -> list[tuple[str, dict[str, np.ndarray]]]:
    """Prefill from zero and from a real carried state, and decode steps, at several batch sizes."""
    rng = np.random.default_rng(seed)
    cases = []
    for batch in (1, 4, 16, 64):
        starts = rng.integers(0, len(valid) - 300, size=batch)
        prompt = np.stack([valid[s : s + 120] for s in starts])
        h, c = (t.numpy() for t in model.zero_state(batch))
        cases.append((f"prefill_b{batch}_t120_zero_state", {"tokens": prompt, "h": h, "c": c}))
        with torch.no_grad():
            _, ht, ct = model(torch.from_numpy(prompt), torch.from_numpy(h), torch.from_numpy(c))
        nxt = np.stack([valid[s + 120 : s + 121] for s in starts])
        cases.append((f"decode_b{batch}_t1", {"tokens": nxt, "h": ht.numpy(), "c": ct.numpy()}))
        more = np.stack([valid[s + 120 : s + 150] for s in starts])
        cases.append(
            (f"prefill_b{batch}_t30_carried_state", {"tokens": more, "h": ht.numpy(), "c": ct.numpy()})
        )
    return cases


def parity(model: CharLSTM, path: Path, cases: list[tuple[str, dict[str, np.ndarray]]]) -> dict[str, object]:
    sess = ort_session(path)
    per_case: dict[str, dict[str, float]] = {}
    worst = {name: 0.0 for name in OUTPUT_NAMES}
    for case, feeds in cases:
        with torch.no_grad():
            expected = model(*(torch.from_numpy(feeds[n]) for n in INPUT_NAMES))
        got = sess.run(OUTPUT_NAMES, feeds)
        per_case[case] = {}
        for name, ref, out in zip(OUTPUT_NAMES, expected, got, strict=True):
            diff = float(np.abs(ref.numpy().astype(np.float64) - out).max())
            per_case[case][f"{name}_max_abs_diff"] = diff
            worst[name] = max(worst[name], diff)
    return {
        "max_abs_diff": max(worst.values()),
        **{f"{name}_max_abs_diff": value for name, value in worst.items()},
        "cases": per_case,
    }


def run_textgen(out: Path, cfg: TextgenConfig, name: str) -> dict[str, object]:
    pipeline_start = time.monotonic()
    out.mkdir(parents=True, exist_ok=True)
    data = load_text(SHAKESPEARE, cfg.train_fraction)
    (out / VOCAB_FILE).write_text(json.dumps({"chars": data.chars}, ensure_ascii=False) + "\n")
    model, report = train_textgen(data, cfg)
    onnx_path = out / "model.onnx"
    h, c = model.zero_state(2)
    example = (torch.from_numpy(data.valid[:10].reshape(2, 5).copy()), h, c)
    state_axes = {1: "batch"}
    export_onnx(
        model,
        example,
        onnx_path,
        INPUT_NAMES,
        OUTPUT_NAMES,
        {
            "tokens": {0: "batch", 1: "time"},
            "h": state_axes,
            "c": state_axes,
            "logits": {0: "batch"},
            "h_out": state_axes,
            "c_out": state_axes,
        },
    )
    par = parity(model, onnx_path, parity_cases(model, data.valid, cfg.seed))
    log.info("parity torch vs onnxruntime: max abs %.3g", par["max_abs_diff"])

    sess = scoring_session(onnx_path)
    scored = time.monotonic()
    onnx_nats = onnx_stream_nats(sess, data.valid, cfg.num_layers, cfg.hidden_size)
    log.info(
        "validation (onnxruntime, whole split): %.4f nats/char in %.0fs", onnx_nats, time.monotonic() - scored
    )
    prefix = data.valid[: PREFIX_CHECK_CHARS + 1]
    prefix_nats = onnx_stream_nats(sess, prefix, cfg.num_layers, cfg.hidden_size)
    prefix_torch = stream_nats(model, prefix, torch.device("cpu"))
    report["pipeline_seconds"] = round(time.monotonic() - pipeline_start, 1)
    evaluation: dict[str, object] = {
        "validation_loss_nats_per_char": round(onnx_nats, 5),
        "validation_bits_per_char": round(onnx_nats / math.log(2), 5),
        "validation_characters_scored": len(data.valid) - 1,
        "validation_prefix_check": {
            "characters_scored": PREFIX_CHECK_CHARS,
            "nats_per_char": round(prefix_nats, 5),
            "torch_nats_per_char": round(prefix_torch, 5),
        },
        "method": "the whole validation split (last 10% by position) as one stream from the zero state; "
        "each character scored given all characters before it in the split; onnxruntime CPU on model.onnx "
        "(chunked prefill for the state at every 1000th character, then all chunks decoded side by side)",
        "baselines": {
            "unigram_nats_per_char": round(unigram_nats(data.train, data.valid, len(data.chars)), 5),
            "uniform_nats_per_char": round(math.log(len(data.chars)), 5),
            "nanogpt_char_transformer_gpu": NANOGPT_VAL_NATS,
        },
        "baselines_note": "unigram: add-one-smoothed training character frequencies; nanogpt: the 6-layer "
        "character transformer of nanoGPT's shakespeare_char config on the same 90/10 split, "
        "as its README reports",
    }
    manifest: dict[str, object] = {
        "name": name,
        "version": int(out.name) if out.name.isdigit() else out.name,
        "task": "generate",
        "description": "Character-level LSTM language model (Tiny Shakespeare); "
        "one graph for prefill and decode.",
        "inputs": [
            tensor_spec("tokens", "INT64", [-1, -1]),
            tensor_spec("h", "FP32", [cfg.num_layers, -1, cfg.hidden_size]),
            tensor_spec("c", "FP32", [cfg.num_layers, -1, cfg.hidden_size]),
        ],
        "outputs": [
            tensor_spec("logits", "FP32", [-1, len(data.chars)]),
            tensor_spec("h_out", "FP32", [cfg.num_layers, -1, cfg.hidden_size]),
            tensor_spec("c_out", "FP32", [cfg.num_layers, -1, cfg.hidden_size]),
        ],
        "parameters": {
            "vocab": VOCAB_FILE,
            "num_layers": cfg.num_layers,
            "hidden_size": cfg.hidden_size,
            "vocab_size": len(data.chars),
            "state_inputs": ["h", "c"],
            "state_outputs": ["h_out", "c_out"],
            "token_input": "tokens",
            "logits_output": "logits",
        },
        "training": {
            "data": data_provenance([SHAKESPEARE], REPO_ROOT),
            "split": {
                "rule": "by position: train = characters [0, int(0.9 n)), validation = the rest",
                "boundary": data.boundary,
                "train_characters": len(data.train),
                "validation_characters": len(data.valid),
            },
            "config": cfg.to_dict(),
            "seed": cfg.seed,
            "libraries": library_versions(),
            **report,
        },
        "evaluation": evaluation,
        "parity": par,
    }
    write_manifest(out, manifest)
    log.info("wrote %s", out)
    return manifest


def config_from_args(
    steps: int | None, seed: int | None, max_seconds: float | None, threads: int | None = None
) -> TextgenConfig:
    cfg = TextgenConfig()
    if threads is not None:
        cfg = replace(cfg, torch_threads=threads)
    if steps is not None:
        cfg = replace(cfg, steps=steps)
    if seed is not None:
        cfg = replace(cfg, seed=seed)
    if max_seconds is not None:
        cfg = replace(cfg, max_train_seconds=max_seconds)
    return cfg


def reevaluate(version_dir: Path, prefix_only: bool = False) -> float:
    """Re-score the committed ONNX artifact with onnxruntime and print it beside the stored number."""
    manifest = json.loads((version_dir / "model.json").read_text())
    data = load_text(SHAKESPEARE, manifest["training"]["config"]["train_fraction"])
    evaluation = manifest["evaluation"]
    if prefix_only:
        stored = evaluation["validation_prefix_check"]["nats_per_char"]
        got = evaluate_onnx(version_dir, data.valid, PREFIX_CHECK_CHARS)
        label = f"first {PREFIX_CHECK_CHARS} validation characters"
    else:
        stored = evaluation["validation_loss_nats_per_char"]
        got = evaluate_onnx(version_dir, data.valid)
        label = f"whole validation split ({len(data.valid) - 1} characters)"
    # Within 2e-4: another CPU may take other onnxruntime kernels, so the last digits can move.
    verdict = "same" if abs(got - stored) <= 2e-4 else "DIFFERENT"
    print(f"{manifest['name']} v{manifest['version']}, {label}")
    print(f"nats/char  manifest {stored:.5f}  re-run {got:.5f}  {verdict}")
    print(f"bits/char  re-run {got / math.log(2):.5f}")
    return got
