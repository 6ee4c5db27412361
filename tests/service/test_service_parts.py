"""Parts of a padded micro-batch (service/runtime/parts.py) run at their own width and change no answer.

The real sentiment graph runs every part; the wrapper around it only records the shapes it was fed.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import onnxruntime as ort
from svc_helpers import MODELS
from tokenizers import Tokenizer

from service.runtime.parts import Arrays, Outputs, run_in_parts, used_widths

MODEL = MODELS / "sst2-distilled" / "1"
TEXTS = [
    "a gripping , funny and moving film .", "dull .",
    "it 's not a bad movie , but it is not a good one either .", "great",
    "the plot goes nowhere and the actors seem to know it , which makes the two hours feel like four .",
    "charming .", "an utter mess", "one of the year 's best , and one of its most surprising .", "meh",
]  # fmt: skip


def _feeds() -> tuple[Arrays, int]:
    params = json.loads((MODEL / "model.json").read_text())["parameters"]
    tokenizer = Tokenizer.from_file(str(MODEL / params["tokenizer"]))
    ids = [e.ids for e in tokenizer.encode_batch(TEXTS)]
    width = max(map(len, ids))
    padded = np.full((len(ids), width), params["pad_id"], dtype=np.int64)
    for row, seq in enumerate(ids):
        padded[row, : len(seq)] = seq
    return {"input_ids": padded, "lengths": np.array([len(s) for s in ids], dtype=np.int64)}, params["pad_id"]


def test_parts_run_at_their_own_width_and_answer_as_each_row_alone() -> None:
    session = ort.InferenceSession(str(MODEL / "model.onnx"), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    feeds, pad_id = _feeds()
    assert [i.name for i in session.get_inputs()] == list(feeds)
    seen: list[tuple[int, int]] = []

    def run(part: Arrays) -> Outputs:
        seen.append(part["input_ids"].shape)
        return list(session.run(names, part))

    together = run_in_parts(run, feeds, len(TEXTS), 3, {"input_ids": pad_id})[0]
    lengths = feeds["lengths"]
    # Shortest rows first, each part no wider than its longest row, every row run once.
    assert [rows for rows, _ in seen] == [3, 3, 3]
    assert [width for _, width in seen] == [int(w) for w in np.sort(lengths)[2::3]]
    for row, length in enumerate(lengths):
        alone = session.run(names, {"input_ids": feeds["input_ids"][row : row + 1, :length],
                                    "lengths": lengths[row : row + 1]})[0]  # fmt: skip
        np.testing.assert_allclose(together[row], alone[0], rtol=0, atol=1e-6)


def test_without_paddable_inputs_parts_are_plain_slices_in_order() -> None:
    feeds = {"x": np.arange(10, dtype=np.float32).reshape(5, 2)}
    seen: list[Any] = []

    def run(part: Arrays) -> Outputs:
        seen.append(part["x"][:, 0].tolist())
        return [part["x"] * 2]

    out = run_in_parts(run, feeds, 5, 2, {})[0]
    assert seen == [[0.0, 2.0], [4.0, 6.0], [8.0]]
    np.testing.assert_array_equal(out, feeds["x"] * 2)


def test_used_width_counts_up_to_the_last_value_that_is_not_padding() -> None:
    ids = np.array([[5, 0, 7, 0, 0], [0, 0, 0, 0, 0], [1, 2, 3, 4, 5], [0, 0, 0, 0, 9]])
    assert used_widths(ids, 0).tolist() == [3, 0, 5, 5]
