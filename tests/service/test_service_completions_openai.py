"""POST /v1/completions driven by the real ``openai`` client against a server process on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from gen_helpers import GEN_MODEL, model_repository, running_server, sse_events


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("completions")
    with running_server(model_repository(tmp, GEN_MODEL), tmp / "server.log") as url:
        yield url


@pytest.fixture(scope="module")
def client(base: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0)


def test_a_completion_has_openai_shape_and_matches_v1_generate(client: openai.OpenAI, base: str) -> None:
    completion = client.completions.create(
        model=GEN_MODEL, prompt="ROMEO:\n", max_tokens=50, temperature=0.8, top_p=0.9, seed=42
    )
    assert completion.object == "text_completion" and completion.model == GEN_MODEL
    assert completion.id.startswith("cmpl-") and completion.created > 0
    [choice] = completion.choices
    assert choice.index == 0 and choice.finish_reason == "length" and choice.logprobs is None
    assert len(choice.text) == 50
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (7, 50)
    assert completion.usage.total_tokens == 57
    # Same sampling, same seed: the seqserve route gives the same text.
    native = httpx.post(
        f"{base}/v1/generate",
        json={"prompt": "ROMEO:\n", "max_new_tokens": 50, "temperature": 0.8, "top_p": 0.9, "seed": 42},
    ).json()
    assert native["text"] == choice.text


def test_streaming_with_the_client_gives_the_same_text_and_a_final_finish_reason(
    client: openai.OpenAI,
) -> None:
    request: dict[str, Any] = {"model": GEN_MODEL, "prompt": "JULIET:\n", "max_tokens": 80, "seed": 5}
    whole = client.completions.create(**request).choices[0].text
    chunks = list(client.completions.create(**request, stream=True, stream_options={"include_usage": True}))
    texts = [c.choices[0].text for c in chunks if c.choices]
    assert "".join(texts) == whole
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "length" and set(finishes[:-1]) <= {None}
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 80


def test_a_stream_ends_with_done(base: str) -> None:
    body = {"model": GEN_MODEL, "prompt": "A", "max_tokens": 5, "stream": True}
    response = httpx.post(f"{base}/v1/completions", json=body)
    assert response.status_code == 200
    events = sse_events(response.text)
    assert events[-1] == "[DONE]" and len(events) >= 2


def test_a_stop_string_and_a_stop_list_cut_the_text(client: openai.OpenAI) -> None:
    request: dict[str, Any] = {"model": GEN_MODEL, "prompt": "MENENIUS:\n", "max_tokens": 200, "seed": 3}
    full = client.completions.create(**request).choices[0].text
    stop = next(ch for ch in " e\n" if ch in full)
    cut = full.index(stop)
    for sent in (stop, [stop, "\u2603zz"]):
        choice = client.completions.create(**request, stop=sent).choices[0]
        assert choice.finish_reason == "stop" and choice.text == full[:cut]


def test_unsupported_options_are_refused_by_name(client: openai.OpenAI) -> None:
    with pytest.raises(openai.UnprocessableEntityError) as caught:
        client.completions.create(model=GEN_MODEL, prompt="A", n=2)
    assert "n" in str(caught.value)
    with pytest.raises(openai.UnprocessableEntityError):
        client.completions.create(model=GEN_MODEL, prompt="A", echo=True)
    with pytest.raises(openai.UnprocessableEntityError):
        client.completions.create(model=GEN_MODEL, prompt="A", max_tokens=10**9)
    with pytest.raises(openai.UnprocessableEntityError):
        client.completions.create(model="no-such-model", prompt="A")
    with pytest.raises(openai.UnprocessableEntityError):
        client.completions.create(model=GEN_MODEL, prompt="\u00e9\u20ac")


def test_explicit_nulls_and_neutral_values_mean_the_defaults(base: str) -> None:
    body = {"model": GEN_MODEL, "prompt": "ROMEO:\n", "seed": 9}
    plain = httpx.post(f"{base}/v1/completions", json=body).json()
    nulls = {"max_tokens": None, "temperature": None, "top_p": None, "n": None, "stream": None, "echo": None,
             "logprobs": None, "frequency_penalty": None, "presence_penalty": None, "stop": None}  # fmt: skip
    neutral = {"n": 1, "best_of": 1, "echo": False, "frequency_penalty": 0, "presence_penalty": 0.0,
               "logit_bias": {}, "suffix": "", "user": "someone"}  # fmt: skip
    for extra in (nulls, neutral):
        response = httpx.post(f"{base}/v1/completions", json={**body, **extra})
        assert response.status_code == 200, response.text
        assert response.json()["choices"] == plain["choices"]
    assert len(plain["choices"][0]["text"]) == 16  # OpenAI's default max_tokens
