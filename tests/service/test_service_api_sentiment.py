"""POST /v1/sentiment on the committed SST-2 model: happy path, raw user text, and every bad input."""

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from svc_helpers import MODELS, assert_error, make_settings

from service.app import create_app

POSITIVE = [
    "A gorgeous, witty and deeply moving film.",
    "This movie was GREAT!!! I loved every minute of it.",
    "One of the best performances I've seen in years.",
]
NEGATIVE = [
    "The worst film of the year: dull, lifeless and far too long.",
    "I didn't like it. The plot makes no sense and the acting is terrible.",
    "A boring, pointless mess.",
]


def _post(client: TestClient, body: Any) -> Any:
    return client.post("/v1/sentiment", json=body)


@pytest.mark.parametrize(("model", "served"), [(None, "sst2-distilled"), ("sst2-bilstm", "sst2-bilstm")])
def test_plain_english_reviews_get_sensible_labels_in_order(
    client: TestClient, model: str | None, served: str
) -> None:
    response = _post(client, {"texts": POSITIVE + NEGATIVE, **({"model": model} if model else {})})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"]["name"] == served
    labels = [r["label"] for r in body["results"]]
    assert labels == ["positive"] * len(POSITIVE) + ["negative"] * len(NEGATIVE)
    for result in body["results"]:
        probs = result["probabilities"]
        assert set(probs) == {"negative", "positive"}
        assert sum(probs.values()) == pytest.approx(1.0, abs=1e-5)
        assert result["score"] == max(probs.values())
        assert result["label"] == max(probs, key=probs.get)
        assert result["truncated"] is False


def test_answer_does_not_depend_on_the_rest_of_the_batch(client: TestClient) -> None:
    # A text alone is tokenized by encode, in a batch by encode_batch: both must read it the same way.
    texts = [*POSITIVE, "ok", "x " * 40, "Ce film était magnifique 🎬, “curly”", *NEGATIVE]
    batch = _post(client, {"texts": texts}).json()["results"]
    for text, in_batch in zip(texts, batch, strict=True):
        alone = _post(client, {"texts": [text]}).json()["results"][0]
        assert (alone["tokens_used"], alone["truncated"]) == (in_batch["tokens_used"], in_batch["truncated"])
        for label, p in alone["probabilities"].items():
            assert in_batch["probabilities"][label] == pytest.approx(p, abs=1e-5)


@pytest.mark.parametrize(
    "text",
    [
        "\u201cCurly quotes\u201d and \u2018apostrophes\u2019 aren\u2019t a problem",
        "Ce film était magnifique, très émouvant 🎬👍",
        "Фильм ужасный",
        "電影很好看",
        "مرحبا \u200f\u202e reversed",
        "e\u0301\u0301\u0301 combining marks",
        "NUL \x00 inside",
        "tab\tand\nnewlines\r\n",
        "🙂" * 50,
    ],
)
def test_raw_user_text_never_crashes(client: TestClient, text: str) -> None:
    response = _post(client, {"texts": [text]})
    assert response.status_code == 200, response.text
    result = response.json()["results"][0]
    assert result["label"] in {"negative", "positive"}
    assert result["tokens_used"] >= 1


def test_long_text_is_truncated_and_says_so(client: TestClient) -> None:
    max_tokens = client.get("/v1/models/sst2-bilstm").json()["parameters"]["max_tokens"]
    text = "a truly wonderful film . " * (max_tokens // 5 + 3)  # 5 tokens per phrase
    result = _post(client, {"texts": [text]}).json()["results"][0]
    assert result["truncated"] is True
    assert result["tokens_used"] == max_tokens
    head = _post(client, {"texts": ["a truly wonderful film . " * (max_tokens // 5 + 1)]}).json()["results"][
        0
    ]
    # Both texts share their first max_tokens tokens, which is all the model reads.
    assert head["probabilities"]["positive"] == pytest.approx(result["probabilities"]["positive"], abs=1e-5)


@pytest.fixture(scope="module")
def small_limits() -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(MODELS, max_texts_per_request=2, max_text_chars=50))) as c:
        yield c


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"texts": [""]}, ["body", "texts", 0]),
        ({"texts": ["fine", "   \t\n"]}, ["body", "texts", 1]),
        ({"texts": ["fine", 123]}, ["body", "texts", 1]),
        ({"texts": [None]}, ["body", "texts", 0]),
        ({"texts": "not a list"}, ["body", "texts"]),
        ({"texts": []}, ["body", "texts"]),
        ({}, ["body", "texts"]),
        ({"texts": ["fine"], "extra": 1}, ["body", "extra"]),
        ({"texts": ["fine"], "model": "no-such-model"}, ["body", "model"]),
        ({"texts": ["fine"], "model": "m4-hourly"}, ["body", "model"]),
        ({"texts": ["\u200b\u200b"]}, ["body", "texts", 0]),
    ],
)
def test_bad_input_gets_4xx_pointing_at_the_field(client: TestClient, body: Any, loc: list) -> None:
    assert_error(_post(client, body), 422, loc=loc)


def test_lone_surrogate_is_refused_not_a_500(client: TestClient) -> None:
    raw = b'{"texts": ["fine", "bad \\ud800 text"]}'
    response = client.post("/v1/sentiment", content=raw, headers={"content-type": "application/json"})
    assert_error(response, 422, loc=["body", "texts", 1])


def test_too_many_texts(small_limits: TestClient) -> None:
    assert_error(_post(small_limits, {"texts": ["a", "b", "c"]}), 422, loc=["body", "texts"])


def test_too_long_text(small_limits: TestClient) -> None:
    assert_error(_post(small_limits, {"texts": ["ok", "y" * 51]}), 422, loc=["body", "texts", 1])
