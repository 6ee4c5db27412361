"""The shipped character LSTM: its manifest contract, checksums, bar, and that its numbers reproduce."""

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from training.export import ort_session
from training.manifest import sha256_file
from training.textgen_pipeline import PREFIX_CHECK_CHARS, SHAKESPEARE, reevaluate
from training.textgen_train import load_text

REPO = Path(__file__).resolve().parents[2]
VERSION_DIR = REPO / "models/shakespeare-char/1"


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    return json.loads((VERSION_DIR / "model.json").read_text())


@pytest.fixture(scope="module")
def session():
    return ort_session(VERSION_DIR / "model.onnx")


def test_every_file_is_listed_and_checksummed(manifest: dict[str, Any]):
    present = {p.name for p in VERSION_DIR.iterdir() if p.is_file() and p.name != "model.json"}
    assert present == set(manifest["files"])
    assert {"model.onnx", "vocab.json"} <= present
    for name, meta in manifest["files"].items():
        assert sha256_file(VERSION_DIR / name) == meta["sha256"]
        assert (VERSION_DIR / name).stat().st_size == meta["bytes"]


def test_contract(manifest: dict[str, Any]):
    p = manifest["parameters"]
    layers, hidden, vocab = p["num_layers"], p["hidden_size"], p["vocab_size"]
    assert (manifest["name"], manifest["version"], manifest["task"]) == ("shakespeare-char", 1, "generate")
    assert manifest["inputs"] == [
        {"name": "tokens", "datatype": "INT64", "shape": [-1, -1]},
        {"name": "h", "datatype": "FP32", "shape": [layers, -1, hidden]},
        {"name": "c", "datatype": "FP32", "shape": [layers, -1, hidden]},
    ]
    assert manifest["outputs"] == [
        {"name": "logits", "datatype": "FP32", "shape": [-1, vocab]},
        {"name": "h_out", "datatype": "FP32", "shape": [layers, -1, hidden]},
        {"name": "c_out", "datatype": "FP32", "shape": [layers, -1, hidden]},
    ]
    assert p == {
        "vocab": "vocab.json",
        "num_layers": layers,
        "hidden_size": hidden,
        "vocab_size": vocab,
        "state_inputs": ["h", "c"],
        "state_outputs": ["h_out", "c_out"],
        "token_input": "tokens",
        "logits_output": "logits",
    }
    chars = json.loads((VERSION_DIR / "vocab.json").read_text())["chars"]
    assert chars == load_text(SHAKESPEARE, 0.9).chars and len(chars) == vocab == 65


def test_graph_matches_the_manifest(manifest: dict[str, Any], session):
    assert [i.name for i in session.get_inputs()] == ["tokens", "h", "c"]
    assert [o.name for o in session.get_outputs()] == ["logits", "h_out", "c_out"]


def test_provenance_parity_and_evaluation(manifest: dict[str, Any]):
    t = manifest["training"]
    assert [Path(d["path"]).name for d in t["data"]] == ["input.txt"]
    assert t["data"][0]["sha256"] == sha256_file(SHAKESPEARE)
    assert t["split"]["boundary"] == 1_003_854
    assert t["seed"] == t["config"]["seed"] and t["steps"] > 0 and t["train_seconds"] > 0
    assert {"torch", "onnx", "onnxruntime", "numpy"} <= set(t["libraries"])
    par = manifest["parity"]
    assert par["max_abs_diff"] < 1e-4
    cases = set(par["cases"])
    for batch in (1, 4, 16, 64):
        assert {f"prefill_b{batch}_t120_zero_state", f"decode_b{batch}_t1"} <= cases
    ev = manifest["evaluation"]
    nats = ev["validation_loss_nats_per_char"]
    assert ev["validation_bits_per_char"] == pytest.approx(nats / math.log(2), abs=1e-5)
    assert ev["validation_characters_scored"] == 111_539
    assert ev["baselines"]["nanogpt_char_transformer_gpu"] == 1.47
    assert nats < ev["baselines"]["unigram_nats_per_char"] < ev["baselines"]["uniform_nats_per_char"]
    assert ev["validation_prefix_check"]["torch_nats_per_char"] == pytest.approx(
        ev["validation_prefix_check"]["nats_per_char"], abs=1e-4
    )


def test_committed_loss_meets_the_bar(manifest: dict[str, Any]):
    assert manifest["evaluation"]["validation_loss_nats_per_char"] <= 1.60


def test_evaluate_textgen_reproduces_the_manifest(
    manifest: dict[str, Any], capsys: pytest.CaptureFixture[str]
):
    again = reevaluate(VERSION_DIR, prefix_only=True)
    stored = manifest["evaluation"]["validation_prefix_check"]
    assert stored["characters_scored"] == PREFIX_CHECK_CHARS
    # Not bit-exact: another CPU may take other onnxruntime kernels (AVX2 vs AVX-512).
    assert again == pytest.approx(stored["nats_per_char"], abs=2e-4)
    assert "nats/char  manifest" in capsys.readouterr().out


def test_prefill_equals_decoding_and_rows_do_not_interact(manifest: dict[str, Any], session):
    """What the server relies on: one prefill call equals T decode calls, for every row of a batch."""
    p = manifest["parameters"]
    ids = load_text(SHAKESPEARE, 0.9).valid
    tokens = np.stack([ids[i * 1000 : i * 1000 + 40] for i in range(5)])
    zero = np.zeros((p["num_layers"], 5, p["hidden_size"]), dtype=np.float32)
    logits, h, c = session.run(None, {"tokens": tokens, "h": zero, "c": zero})
    hs, cs = zero, zero
    for t in range(tokens.shape[1]):
        step, hs, cs = session.run(None, {"tokens": tokens[:, t : t + 1], "h": hs, "c": cs})
    np.testing.assert_allclose(step, logits, atol=1e-4)
    np.testing.assert_allclose(hs, h, atol=1e-5)
    np.testing.assert_allclose(cs, c, atol=1e-5)
    alone = session.run(None, {"tokens": tokens[2:3], "h": zero[:, :1], "c": zero[:, :1]})[0]
    np.testing.assert_allclose(alone[0], logits[2], atol=1e-4)
