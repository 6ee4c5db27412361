"""The character model over the Open Inference Protocol (V2): one graph step with the state in and out,
agreeing with /v1/generate, and hostile tensors refused with 4xx rather than an onnxruntime failure."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from gen_helpers import GEN_MODEL, model_repository
from svc_helpers import MODELS, make_settings

from service.app import create_app

PARAMS = json.loads((MODELS / GEN_MODEL / "1" / "model.json").read_text())["parameters"]
CHARS = json.loads((MODELS / GEN_MODEL / "1" / "vocab.json").read_text())["chars"]
LAYERS, HIDDEN = PARAMS["num_layers"], PARAMS["hidden_size"]
INFER = f"/v2/models/{GEN_MODEL}/infer"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    repo = model_repository(tmp_path_factory.mktemp("generate_v2"), GEN_MODEL)
    with TestClient(create_app(make_settings(repo))) as test_client:
        yield test_client


def _body(
    tokens: list[list[int]], state: np.ndarray | None = None, rows: int | None = None
) -> dict[str, Any]:
    rows = len(tokens) if rows is None else rows
    zeros = np.zeros((LAYERS, rows, HIDDEN), dtype=np.float32) if state is None else state
    flat = [t for row in tokens for t in row]
    return {
        "inputs": [
            {"name": "tokens", "datatype": "INT64", "shape": [len(tokens), len(tokens[0])], "data": flat},
            *({"name": n, "datatype": "FP32", "shape": list(zeros.shape), "data": zeros.ravel().tolist()}
              for n in ("h", "c")),
        ]
    }  # fmt: skip


def _outputs(response: Any) -> dict[str, np.ndarray]:
    assert response.status_code == 200, response.text
    return {o["name"]: np.asarray(o["data"]).reshape(o["shape"]) for o in response.json()["outputs"]}


def test_greedy_steps_over_v2_spell_what_v1_generates(client: TestClient) -> None:
    prompt = "ROMEO:\n"
    expected = client.post("/v1/generate", json={"prompt": prompt, "max_new_tokens": 12, "temperature": 0})
    out = _outputs(client.post(INFER, json=_body([[CHARS.index(ch) for ch in prompt]])))
    text = ""
    for _ in range(12):
        token = int(np.argmax(out["logits"][0]))
        text += CHARS[token]
        state = np.stack([out["h_out"], out["c_out"]]).astype(np.float32)
        body = _body([[token]], state[0])
        body["inputs"][2]["data"] = state[1].ravel().tolist()
        out = _outputs(client.post(INFER, json=body))
    assert text == expected.json()["text"]


@pytest.mark.parametrize(
    "body",
    [
        _body([[1, 2, len(CHARS)]]),  # a token id past the vocabulary
        _body([[1, -1]]),
        _body([[1], [2]], rows=1),  # state batch (axis 1) disagrees with the tokens' rows
    ],
)
def test_hostile_tensors_get_4xx(client: TestClient, body: dict[str, Any]) -> None:
    response = client.post(INFER, json=body)
    assert 400 <= response.status_code < 500, response.text
