import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer

from training.export import export_onnx, ort_session, parity
from training.models import BiLSTMSentiment
from training.sentiment_pipeline import INPUT_NAMES, OUTPUT_NAME, SST_TEST, encode_rows, parity_cases
from training.sentiment_train import SentimentConfig, build_model, read_tsv
from training.text import PAD_ID, encode_padded

REPO = Path(__file__).resolve().parents[2]
TOL = 1e-5


# Both shipped sentiment models share the architecture, so every property is checked on each.
@pytest.fixture(scope="module", params=["sst2-bilstm/1", "sst2-distilled/1", "sst2-distilled/2"])
def sentiment_dir(request: pytest.FixtureRequest) -> Path:
    return REPO / "models" / request.param


@pytest.fixture(scope="module")
def manifest(sentiment_dir: Path) -> dict[str, Any]:
    return json.loads((sentiment_dir / "model.json").read_text())


@pytest.fixture(scope="module")
def shipped_torch(manifest: dict[str, Any], sentiment_dir: Path) -> BiLSTMSentiment:
    cfg = SentimentConfig(**manifest["training"]["config"])
    model = build_model(cfg, manifest["parameters"]["vocab_size"])
    model.load_state_dict(torch.load(sentiment_dir / "torch_state.pt", weights_only=True))
    return model.eval()


@pytest.fixture(scope="module")
def shipped_session(sentiment_dir: Path) -> Any:
    return ort_session(sentiment_dir / "model.onnx")


@pytest.fixture(scope="module")
def tok(sentiment_dir: Path) -> Tokenizer:
    return Tokenizer.from_file(str(sentiment_dir / "tokenizer.json"))


def _pad(rows: list[list[int]], extra: int = 0) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.array([len(r) for r in rows], dtype=np.int64)
    ids = np.full((len(rows), max(1, int(lengths.max())) + extra), PAD_ID, dtype=np.int64)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = r
    return ids, lengths


def _rows(vocab_size: int) -> st.SearchStrategy[list[list[int]]]:
    row = st.lists(st.integers(0, vocab_size - 1), min_size=1, max_size=40)
    return st.lists(row, min_size=2, max_size=9)


def _torch_probs(model: BiLSTMSentiment, ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(ids), torch.from_numpy(lengths)).numpy()


def _assert_padding_invariant(run: Any, rows: list[list[int]], extra: int) -> None:
    batched = run(*_pad(rows, extra))
    assert batched.shape == (len(rows), 2)
    np.testing.assert_allclose(batched.sum(axis=1), 1.0, atol=1e-6)
    for i, r in enumerate(rows):
        alone = run(*_pad([r]))
        np.testing.assert_allclose(alone[0], batched[i], atol=TOL, rtol=0)


def test_fresh_model_is_padding_invariant_in_torch():
    torch.manual_seed(0)
    model = BiLSTMSentiment(50, embed_dim=8, hidden_size=6).eval()

    @settings(max_examples=60, deadline=None)
    @given(_rows(50), st.integers(0, 5))
    def check(rows: list[list[int]], extra: int) -> None:
        _assert_padding_invariant(lambda i, n: _torch_probs(model, i, n), rows, extra)

    check()


def test_zero_and_overlong_lengths_are_safe():
    torch.manual_seed(0)
    model = BiLSTMSentiment(20, embed_dim=4, hidden_size=3).eval()
    ids = np.array([[0, 0, 0], [5, 6, 7]], dtype=np.int64)
    probs = _torch_probs(model, ids, np.array([0, 9], dtype=np.int64))
    np.testing.assert_allclose(probs[0], _torch_probs(model, ids[:1, :1], np.array([1]))[0], atol=TOL)
    np.testing.assert_allclose(probs[1], _torch_probs(model, ids[1:], np.array([3]))[0], atol=TOL)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_shipped_torch_model_is_padding_invariant(shipped_torch: BiLSTMSentiment, data: st.DataObject):
    rows = data.draw(_rows(shipped_torch.embedding.num_embeddings))
    extra = data.draw(st.integers(0, 5))
    _assert_padding_invariant(lambda i, n: _torch_probs(shipped_torch, i, n), rows, extra)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_shipped_onnx_model_is_padding_invariant(
    shipped_session: Any, manifest: dict[str, Any], data: st.DataObject
):
    rows = data.draw(_rows(manifest["parameters"]["vocab_size"]))
    extra = data.draw(st.integers(0, 5))

    def run(ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        return shipped_session.run([OUTPUT_NAME], {"input_ids": ids, "lengths": lengths})[0]

    _assert_padding_invariant(run, rows, extra)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(st.text(max_size=200), min_size=2, max_size=6))
def test_shipped_onnx_padding_invariant_on_raw_text(
    shipped_session: Any, tok: Tokenizer, manifest: dict[str, Any], texts: list[str]
):
    max_tokens = manifest["parameters"]["max_tokens"]

    def probs(batch: list[str]) -> np.ndarray:
        ids, lengths = encode_padded(tok, batch, max_tokens)
        return shipped_session.run([OUTPUT_NAME], {"input_ids": ids, "lengths": lengths})[0]

    together = probs(texts)
    for i, t in enumerate(texts):
        np.testing.assert_allclose(probs([t])[0], together[i], atol=TOL, rtol=0)


@pytest.mark.parametrize("batch", [1, 7, 64])
def test_shipped_onnx_matches_its_torch_weights(
    batch: int, shipped_torch: BiLSTMSentiment, tok: Tokenizer, manifest: dict[str, Any], sentiment_dir: Path
):
    max_tokens = manifest["parameters"]["max_tokens"]
    texts, _ = read_tsv(SST_TEST)
    cases = [
        c
        for c in parity_cases(encode_rows(tok, texts, max_tokens), max_tokens)
        if c[0].startswith(f"batch{batch}_")
    ]
    assert {c[1]["input_ids"].shape[1] for c in cases} >= {max_tokens}
    result = parity(shipped_torch, sentiment_dir / "model.onnx", cases)
    assert result["max_abs_diff"] < 1e-5
    recorded = manifest["parity"]
    assert recorded["max_abs_diff"] < 1e-5
    assert set(recorded["cases"]) == {
        f"batch{b}_{k}" for b in (1, 7, 64) for k in ("short", f"len{max_tokens}")
    }


def test_shipped_graph_contract(manifest: dict[str, Any], sentiment_dir: Path):
    graph = onnx.load(str(sentiment_dir / "model.onnx"))
    assert "LSTM" in {n.op_type for n in graph.graph.node}
    inputs = {i.name: i for i in graph.graph.input}
    assert list(inputs) == INPUT_NAMES
    assert [d.dim_param for d in inputs["input_ids"].type.tensor_type.shape.dim] == ["batch", "sequence"]
    assert inputs["input_ids"].type.tensor_type.elem_type == onnx.TensorProto.INT64
    assert inputs["lengths"].type.tensor_type.elem_type == onnx.TensorProto.INT64
    out = graph.graph.output[0]
    assert out.name == OUTPUT_NAME and out.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert (sentiment_dir / "model.onnx").stat().st_size < 26 * 2**20


def test_export_of_a_tiny_model_keeps_sequence_dynamic(tmp_path: Path):
    torch.manual_seed(1)
    model = BiLSTMSentiment(30, embed_dim=6, hidden_size=5).eval()
    ids, lengths = _pad([[3, 4, 5], [6]])
    path = tmp_path / "tiny.onnx"
    export_onnx(
        model,
        (torch.from_numpy(ids), torch.from_numpy(lengths)),
        path,
        INPUT_NAMES,
        [OUTPUT_NAME],
        {"input_ids": {0: "batch", 1: "sequence"}, "lengths": {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
    )
    sess = ort_session(path)
    rows = [[(i * 7 + j) % 30 for j in range(n)] for i, n in enumerate([1, 50, 13, 200])]
    got = sess.run(None, dict(zip(INPUT_NAMES, _pad(rows), strict=True)))[0]
    np.testing.assert_allclose(got, _torch_probs(model, *_pad(rows)), atol=1e-6)
