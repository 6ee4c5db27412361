"""sst2-distill-pair: students averaged inside one graph, and the dev-only choice among them."""

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from training.distill_pair import MAX_STUDENTS, StudentEnsemble, best_candidate, dev_candidates
from training.export import export_onnx, ort_session, parity
from training.models import BiLSTMSentiment


def _students(n: int) -> list[BiLSTMSentiment]:
    out = []
    for seed in range(n):
        torch.manual_seed(seed)
        out.append(BiLSTMSentiment(vocab_size=50, embed_dim=8, hidden_size=6).eval())
    return out


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.tensor([[5, 9, 3, 0, 0], [7, 7, 2, 8, 4], [1, 0, 0, 0, 0]])
    return ids, torch.tensor([3, 5, 1])


def test_the_ensemble_is_the_softmax_of_the_mean_logits():
    students = _students(2)
    ids, lengths = _batch()
    with torch.no_grad():
        got = StudentEnsemble(students)(ids, lengths)
        mean = (students[0].logits(ids, lengths) + students[1].logits(ids, lengths)) / 2
        alone = StudentEnsemble(students[:1])(ids, lengths)
        torch.testing.assert_close(got, torch.softmax(mean, dim=-1))
        torch.testing.assert_close(alone, students[0](ids, lengths))
    with pytest.raises(ValueError, match="at least one"):
        StudentEnsemble([])


def test_padding_cannot_change_the_ensembles_answer():
    ens = StudentEnsemble(_students(2)).eval()
    ids, lengths = _batch()
    wider = torch.cat([ids, torch.zeros(3, 4, dtype=ids.dtype)], dim=1)
    with torch.no_grad():
        torch.testing.assert_close(ens(wider, lengths), ens(ids, lengths))
        torch.testing.assert_close(ens(ids[1:2], lengths[1:2])[0], ens(ids, lengths)[1])


def test_the_ensemble_exports_as_one_graph(tmp_path: Path):
    ens = StudentEnsemble(_students(2)).eval()
    ids, lengths = _batch()
    path = tmp_path / "model.onnx"
    axes = {"input_ids": {0: "batch", 1: "sequence"}, "lengths": {0: "batch"}, "probabilities": {0: "batch"}}
    export_onnx(ens, (ids, lengths), path, ["input_ids", "lengths"], ["probabilities"], axes)
    case = {"input_ids": np.tile(ids.numpy(), (3, 2)), "lengths": np.tile(lengths.numpy(), 3)}
    assert parity(ens, path, [("batch9", case)])["max_abs_diff"] < 1e-5
    # Two students, each a forward and a backward LSTM, fused.
    assert [n.op_type for n in onnx.load(str(path)).graph.node].count("LSTM") == 4
    assert ort_session(path).run(None, case)[0].shape == (9, 2)


def test_dev_chooses_the_best_and_ties_go_to_fewer_students():
    students = _students(2)
    ids, lengths = _batch()
    rows = [ids[i, : int(lengths[i])].tolist() for i in range(3)]
    with torch.no_grad():
        labels = StudentEnsemble(students)(ids, lengths).argmax(dim=1).numpy()
    candidates = dev_candidates(students, rows, labels)
    assert [c["students"] for c in candidates] == [[0], [1], [0, 1]]
    assert candidates[2]["dev_accuracy"] == 1.0
    perfect = [c["students"] for c in candidates if c["dev_accuracy"] == 1.0]
    assert best_candidate(candidates) == min(perfect, key=len)
    tie = [
        {"students": [0], "dev_accuracy": 0.9},
        {"students": [1], "dev_accuracy": 0.8},
        {"students": [0, 1], "dev_accuracy": 0.9},
    ]
    assert best_candidate(tie) == [0]
    assert best_candidate([*tie, {"students": [0, 1, 2], "dev_accuracy": 0.91}]) == [0, 1, 2]


def test_no_candidate_costs_more_than_two_bilstms():
    students = _students(3)
    ids, lengths = _batch()
    rows = [ids[i, : int(lengths[i])].tolist() for i in range(3)]
    candidates = dev_candidates(students, rows, np.array([0, 1, 0]))
    assert MAX_STUDENTS == 2
    assert [c["students"] for c in candidates] == [[0], [1], [2], [0, 1], [0, 2], [1, 2]]
