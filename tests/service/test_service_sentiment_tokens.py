"""The sentiment handler's token ids are exactly what the model's tokenizer.json gives, on real reviews."""

import csv

import pytest
from svc_helpers import MODELS, REPO, make_settings
from tokenizers import Tokenizer

from service.runtime.providers import CPU
from service.runtime.registry import ModelRegistry
from service.tasks.sentiment import SentimentHandler

SST2_DEV = REPO / "training" / "data" / "sst2" / "glue_dev.tsv"
# Text the reviews lack: accents, curly quotes, control and format characters, non-Latin scripts, emoji.
ODD = [
    "Caf\u00e9 \u00abd\u00e9j\u00e0 vu\u00bb \u2019tis", "don\u2019t\u200b stop\x07",
    "\u5f88\u597d \u7684 \u7535\u5f71",
    "na\u00efve \U0001f642 film", "A\tB\nC", "x" * 700,
]  # fmt: skip


@pytest.fixture(scope="module")
def handler() -> SentimentHandler:
    registry = ModelRegistry(make_settings(MODELS), [CPU])
    registry.load()
    result = registry.get("sst2-distilled").handler
    assert isinstance(result, SentimentHandler)
    return result


def test_ids_match_the_tokenizer_one_text_at_a_time_and_in_batches(handler: SentimentHandler) -> None:
    with SST2_DEV.open(newline="") as f:
        texts = [row["sentence"] for row in csv.DictReader(f, delimiter="\t")] + ODD
    assert len(texts) > 800
    version = handler.manifest.version
    reference = Tokenizer.from_file(str(MODELS / "sst2-distilled" / str(version) / "tokenizer.json"))
    expected = [reference.encode(text).ids for text in texts]
    assert [handler._tokenize([text])[0].ids for text in texts] == expected
    assert [e.ids for e in handler._tokenize(texts)] == expected
