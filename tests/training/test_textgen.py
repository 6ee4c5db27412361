"""The character LSTM's pieces on small models: data split, state carrying, export, chunked scoring."""

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from training.export import export_onnx, ort_session
from training.models import CharLSTM
from training.textgen_pipeline import INPUT_NAMES, OUTPUT_NAMES, SHAKESPEARE, onnx_stream_nats, parity
from training.textgen_train import TextgenConfig, learning_rate, load_text, stream_nats, unigram_nats


@pytest.fixture(scope="module")
def data():
    return load_text(SHAKESPEARE, 0.9)


@pytest.fixture(scope="module")
def small_model() -> CharLSTM:
    torch.manual_seed(0)
    return CharLSTM(65, embed_dim=8, hidden_size=16, num_layers=2, dropout=0.0).eval()


@pytest.fixture(scope="module")
def small_onnx(small_model: CharLSTM, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("textgen") / "model.onnx"
    h, c = small_model.zero_state(2)
    axes = {1: "batch"}
    export_onnx(
        small_model,
        (torch.zeros(2, 5, dtype=torch.int64), h, c),
        path,
        INPUT_NAMES,
        OUTPUT_NAMES,
        {
            "tokens": {0: "batch", 1: "time"},
            "h": axes,
            "c": axes,
            "logits": {0: "batch"},
            "h_out": axes,
            "c_out": axes,
        },
    )
    return path


def test_split_by_position_and_vocabulary(data):
    assert data.boundary == 1_003_854
    assert (len(data.train), len(data.valid)) == (1_003_854, 111_540)
    assert len(data.chars) == 65 and data.chars == sorted(data.chars)
    assert data.chars[:2] == ["\n", " "]
    text = SHAKESPEARE.read_text()
    assert "".join(data.chars[i] for i in data.valid[:200]) == text[1_003_854:1_004_054]


def test_unigram_baseline_is_between_uniform_and_zero(data):
    uni = unigram_nats(data.train, data.valid, len(data.chars))
    assert 2.5 < uni < math.log(65)


def test_learning_rate_warms_up_and_decays_to_the_floor():
    cfg = replace(TextgenConfig(), steps=1000, warmup_steps=10, max_train_seconds=1e9)
    assert learning_rate(cfg, 0) == pytest.approx(cfg.learning_rate / 10)
    assert learning_rate(cfg, 10) == pytest.approx(cfg.learning_rate)
    assert learning_rate(cfg, 1000) == pytest.approx(cfg.min_learning_rate)
    # The time budget ends the schedule too: half the time spent means at most half-way down.
    half = learning_rate(replace(cfg, max_train_seconds=100.0), 20, elapsed=50.0)
    assert half == pytest.approx(cfg.min_learning_rate + 0.5 * (cfg.learning_rate - cfg.min_learning_rate))


def test_one_prefill_equals_many_decode_steps(small_model: CharLSTM):
    tokens = torch.randint(0, 65, (3, 12), generator=torch.Generator().manual_seed(1))
    h, c = small_model.zero_state(3)
    with torch.no_grad():
        logits, h_all, c_all = small_model(tokens, h, c)
        every, _, _ = small_model.step_logits(tokens, h, c)
        for t in range(12):
            step_logits, h, c = small_model(tokens[:, t : t + 1], h, c)
    torch.testing.assert_close(logits, every[:, -1])
    torch.testing.assert_close(step_logits, logits, atol=1e-6, rtol=0)
    torch.testing.assert_close(h, h_all, atol=1e-6, rtol=0)
    torch.testing.assert_close(c, c_all, atol=1e-6, rtol=0)


def test_export_has_fused_lstm_and_matches_torch(small_model: CharLSTM, small_onnx: Path, data):
    ids = data.valid
    cases = []
    for batch, steps in ((1, 1), (4, 30), (9, 1)):
        tokens = np.stack([ids[i * 50 : i * 50 + steps] for i in range(batch)])
        rng = np.random.default_rng(batch)
        state = [(0.3 * rng.standard_normal((2, batch, 16))).astype(np.float32) for _ in range(2)]
        cases.append((f"b{batch}_t{steps}", {"tokens": tokens, "h": state[0], "c": state[1]}))
    result = parity(small_model, small_onnx, cases)
    assert result["max_abs_diff"] < 1e-5
    outputs = [o.name for o in ort_session(small_onnx).get_outputs()]
    assert outputs == OUTPUT_NAMES


def test_chunked_onnx_scoring_equals_one_stream_and_torch(small_model: CharLSTM, small_onnx: Path, data):
    ids = data.valid[:1201]
    sess = ort_session(small_onnx)
    one_stream = onnx_stream_nats(sess, ids, 2, 16, chunk=len(ids))
    chunked = onnx_stream_nats(sess, ids, 2, 16, chunk=97)
    torch_nats = stream_nats(small_model, ids, torch.device("cpu"), chunk=500)
    assert chunked == pytest.approx(one_stream, abs=1e-5)
    assert torch_nats == pytest.approx(one_stream, abs=1e-5)
    assert one_stream == pytest.approx(math.log(65), abs=0.3)  # an untrained model is near uniform
