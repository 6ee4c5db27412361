"""POST /v1/generate on the committed character model, in process: answers, streaming, stop strings,
seeds, limits and bad input."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from gen_helpers import GEN_MODEL, PROMPTS, model_repository, sse_json
from prometheus_client import REGISTRY
from svc_helpers import MODELS, assert_error, make_settings

from service.app import create_app

VOCAB = json.loads((MODELS / GEN_MODEL / "1" / "vocab.json").read_text())["chars"]


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return model_repository(tmp_path_factory.mktemp("generate"), GEN_MODEL)


@pytest.fixture(scope="module")
def client(repo: Path) -> Iterator[TestClient]:
    settings = make_settings(repo, max_prompt_chars=200, max_new_tokens=300)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def _generate(client: TestClient, **body: Any) -> dict[str, Any]:
    response = client.post("/v1/generate", json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


def _stream(client: TestClient, **body: Any) -> list[dict[str, Any]]:
    with client.stream("POST", "/v1/generate", json={**body, "stream": True}) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        return sse_json(response.read().decode())


def test_greedy_answer_has_the_documented_shape_and_only_vocabulary_characters(client: TestClient) -> None:
    body = _generate(client, prompt="ROMEO:\n", max_new_tokens=60, temperature=0)
    assert set(body) == {"model", "text", "tokens", "finish_reason"}
    assert body["model"] == {"name": GEN_MODEL, "version": 1}
    assert body["finish_reason"] == "length" and body["tokens"] == 60
    # One character per token, the prompt not repeated, nothing outside the vocabulary.
    assert len(body["text"]) == 60 and set(body["text"]) <= set(VOCAB)
    assert _generate(client, prompt="ROMEO:\n", max_new_tokens=60, temperature=0) == body


def test_a_seed_reproduces_sampled_text_and_different_seeds_differ(client: TestClient) -> None:
    request = {"prompt": "JULIET:\n", "max_new_tokens": 80, "temperature": 1.0, "top_k": 20, "top_p": 0.95}
    first = _generate(client, **request, seed=7)["text"]
    assert _generate(client, **request, seed=7)["text"] == first
    others = {_generate(client, **request, seed=seed)["text"] for seed in (8, 9, 10)}
    assert first not in others and len(others) > 1


def test_top_k_1_and_a_tiny_top_p_are_greedy(client: TestClient) -> None:
    greedy = _generate(client, prompt="HAMLET:\n", max_new_tokens=40, temperature=0)["text"]
    assert _generate(client, prompt="HAMLET:\n", max_new_tokens=40, top_k=1, seed=1)["text"] == greedy
    assert _generate(client, prompt="HAMLET:\n", max_new_tokens=40, top_p=1e-9, seed=2)["text"] == greedy


@pytest.mark.parametrize("sampling", [{"temperature": 0}, {"temperature": 0.9, "seed": 123}])
def test_streamed_events_add_up_to_the_non_streamed_answer(
    client: TestClient, sampling: dict[str, Any]
) -> None:
    whole = _generate(client, prompt="First Citizen:\n", max_new_tokens=120, **sampling)
    events = _stream(client, prompt="First Citizen:\n", max_new_tokens=120, **sampling)
    assert all(set(e) == {"text", "tokens", "finish_reason"} for e in events)
    assert [e["finish_reason"] for e in events[:-1]] == [None] * (len(events) - 1)
    assert events[-1]["finish_reason"] == "length" and events[-1]["tokens"] == 120
    assert "".join(e["text"] for e in events) == whole["text"]
    counts = [e["tokens"] for e in events]
    assert counts == sorted(counts)


def test_stop_strings_end_the_text_before_them_streamed_or_not(client: TestClient) -> None:
    sampled = {"prompt": "MENENIUS:\n", "max_new_tokens": 250, "temperature": 1.0, "seed": 11}
    full = _generate(client, **sampled)["text"]
    # A two-character string that first occurs partway through, so its first character is held back once.
    stop = next(full[i : i + 2] for i in range(20, len(full) - 1) if full[i : i + 2] not in full[: i + 1])
    cut = full.index(stop)
    for stops in ([stop], ["\u2603never", stop]):
        body = _generate(client, **sampled, stop=stops)
        assert body["text"] == full[:cut] and body["finish_reason"] == "stop"
        assert body["tokens"] == cut + len(stop)
        events = _stream(client, **sampled, stop=stops)
        assert "".join(e["text"] for e in events) == full[:cut]
        assert events[-1]["finish_reason"] == "stop"


def test_a_prompt_character_outside_the_vocabulary_is_named_with_its_position(client: TestClient) -> None:
    outside = next(ch for ch in "é€~#😀" if ch not in VOCAB)
    response = client.post("/v1/generate", json={"prompt": f"ROMEO{outside}:", "max_new_tokens": 5})
    error = assert_error(response, 422, ["body", "prompt"], "invalid_input")
    msg = error["details"][0]["msg"]
    assert repr(outside) in msg and "position 5" in msg


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"prompt": "x" * 201}, ["body", "prompt"]),  # max_prompt_chars=200 here
        ({"prompt": "", "max_new_tokens": 5}, ["body", "prompt"]),
        ({"prompt": "A", "max_new_tokens": 301}, ["body", "max_new_tokens"]),  # max_new_tokens=300 here
        ({"prompt": "A", "max_new_tokens": 0}, ["body", "max_new_tokens"]),
        ({"prompt": "A", "temperature": -0.1}, ["body", "temperature"]),
        ({"prompt": "A", "temperature": "0.5"}, ["body", "temperature"]),
        ({"prompt": "A", "top_p": 0}, ["body", "top_p"]),
        ({"prompt": "A", "top_p": 1.5}, ["body", "top_p"]),
        ({"prompt": "A", "top_k": 0}, ["body", "top_k"]),
        ({"prompt": "A", "seed": -1}, ["body", "seed"]),
        ({"prompt": "A", "seed": 2**64}, ["body", "seed"]),
        ({"prompt": "A", "stop": [""]}, ["body", "stop", 0]),
        ({"prompt": "A", "stop": "\n"}, ["body", "stop"]),
        ({"prompt": "A", "stream": "yes"}, ["body", "stream"]),
        ({"prompt": "A", "n": 2}, ["body", "n"]),
        ({"prompt": ["A"]}, ["body", "prompt"]),
        ({"prompt": "A", "model": "nope"}, ["body", "model"]),
    ],
)
def test_bad_requests_get_422_pointing_at_the_field(
    client: TestClient, body: dict[str, Any], loc: list[Any]
) -> None:
    assert_error(client.post("/v1/generate", json=body), 422, loc)


def test_every_prompt_of_the_shared_list_is_in_the_vocabulary(client: TestClient) -> None:
    # The batching tests rely on these prompts; a vocabulary change must fail here, loudly.
    for prompt in PROMPTS:
        assert set(prompt) <= set(VOCAB), prompt


def test_the_generation_timeout_applies(repo: Path) -> None:
    settings = make_settings(repo, generation_timeout_seconds=0.05, max_new_tokens=100_000)
    labels = {"model": GEN_MODEL, "reason": "timeout"}
    # The counter is process-wide: other tests may have counted timeouts before this one.
    before = REGISTRY.get_sample_value("seqserve_rejected_requests_total", labels) or 0.0
    with TestClient(create_app(settings)) as slow:
        body = {"prompt": "ROMEO:\n", "max_new_tokens": 100_000}
        assert_error(slow.post("/v1/generate", json=body), 504, error_type="timeout")
        events = _stream(slow, **body)
        assert events[-1]["finish_reason"] == "timeout"
        assert events[-1]["error"]["type"] == "timeout"
        assert sum(e["tokens"] for e in events[:-1][-1:]) < 100_000
        metrics = slow.get("/metrics").text
        # Both timed-out generations left: no slot is held by a stream nobody reads.
        assert f'seqserve_generation_active_streams{{model="{GEN_MODEL}"}} 0.0' in metrics
        after = REGISTRY.get_sample_value("seqserve_rejected_requests_total", labels) or 0.0
        assert after - before == 2.0


def test_generations_that_end_at_their_first_token_leave_the_scheduler(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    # max_new_tokens=1, or a stop string hit by the first token: the stream ends during its prefill.
    first = _generate(client, prompt="ROMEO:\n", max_new_tokens=5, temperature=0)["text"][0]
    for _ in range(3):
        assert _generate(client, prompt="ROMEO:\n", max_new_tokens=1, temperature=0)["text"] == first
        stopped = _generate(client, prompt="ROMEO:\n", max_new_tokens=5, temperature=0, stop=[first])
        assert stopped["text"] == "" and stopped["finish_reason"] == "stop" and stopped["tokens"] == 1
    after = _generate(client, prompt="ROMEO:\n", max_new_tokens=5, temperature=0)
    assert after["text"][0] == first
    assert not [r for r in caplog.records if "generation step failed" in r.getMessage()]
