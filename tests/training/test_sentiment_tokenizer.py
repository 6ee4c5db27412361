import json
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer

from training.text import (
    CONTRACTIONS,
    PAD_ID,
    PAD_TOKEN,
    UNK_ID,
    UNK_TOKEN,
    build_tokenizer,
    encode_padded,
    init_embeddings,
    minilm_dir,
    minilm_vocab,
    pruned_vocab,
    reorder_specials,
)

REPO = Path(__file__).resolve().parents[2]
SENTIMENT_DIR = REPO / "models/sst2-bilstm/1"


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return Tokenizer.from_file(str(SENTIMENT_DIR / "tokenizer.json"))


@pytest.fixture(scope="module")
def max_tokens() -> int:
    return int(json.loads((SENTIMENT_DIR / "model.json").read_text())["parameters"]["max_tokens"])


def _tiny() -> Tokenizer:
    words = ["the", "movie", "was", "great", "did", "like", "it", "!", ".", "'", '"', "cafe", "##s"]
    vocab = {t: i for i, t in enumerate([PAD_TOKEN, UNK_TOKEN, *CONTRACTIONS, *words])}
    return build_tokenizer(vocab)


def test_raw_text_tokenizes_like_sst_text(tok: Tokenizer):
    assert tok.encode("This movie was GREAT!!!").tokens == ["this", "movie", "was", "great", "!", "!", "!"]
    # Contractions split the way the PTB-tokenised training text writes them.
    assert tok.encode("I didn't like it.").tokens == tok.encode("i did n't like it . ").tokens
    assert tok.encode("I didn't like it.").tokens == ["i", "did", "n't", "like", "it", "."]
    assert (
        tok.encode("It's what they're after, isn't it?").tokens
        == tok.encode("it 's what they 're after , is n't it ?").tokens
    )
    # Curly quotes and apostrophes are straightened; PTB `` '' quotes match plain double quotes.
    assert tok.encode("It\u2019s \u201cfine\u201d").tokens == tok.encode('it\'s "fine"').tokens
    assert tok.encode("`` fine ''").tokens == tok.encode('"fine"').tokens
    # Accents are stripped, as in the uncased vocabulary; case does not matter.
    assert tok.encode("Café NAÏVE").ids == tok.encode("cafe naive").ids


def test_round_trip_ids_to_tokens(tok: Tokenizer):
    enc = tok.encode("A gorgeous, witty, seductive movie.")
    assert [tok.id_to_token(i) for i in enc.ids] == enc.tokens
    assert tok.decode(enc.ids) == "a gorgeous , witty , seductive movie ."
    assert UNK_ID not in enc.ids and PAD_ID not in enc.ids
    assert tok.token_to_id(PAD_TOKEN) == PAD_ID and tok.token_to_id(UNK_TOKEN) == UNK_ID


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   \t\n ",
        "\x00",
        "\x00\x01\x7f",
        "\u200f\u200e\u202b",  # RTL/LTR marks only
        "\u0301\u0308",  # combining marks only
        "e\u0301 \u0065\u0301tude",
        "\U0001f600\U0001f44d\U0001f3fd",
        "\U0001f468\u200d\U0001f469\u200d\U0001f467",
        "\u05e9\u05dc\u05d5\u05dd \u0645\u0631\u062d\u0628\u0627",
        "\u65e5\u672c\u8a9e\u306e\u6620\u753b",
        "\ufeffBOM",
        "x" * 10_000,
        "great " * 2_000,
        "\uffff\ufffd",
    ],
)
def test_hostile_strings_do_not_crash(tok: Tokenizer, text: str, max_tokens: int):
    enc = tok.encode(text)
    assert len(enc.ids) == len(enc.tokens)
    assert all(0 <= i < tok.get_vocab_size() for i in enc.ids)
    assert PAD_ID not in enc.ids
    ids, lengths = encode_padded(tok, [text, "fine"], max_tokens)
    assert ids.dtype == np.int64 and lengths.dtype == np.int64
    assert ids.shape[0] == 2 and 1 <= ids.shape[1] <= max_tokens
    assert lengths[0] == min(len(enc.ids), max_tokens)


def test_empty_after_normalisation_gives_no_tokens(tok: Tokenizer, max_tokens: int):
    for text in ["", "\u200f\u200e", "\x00 \t", "\u0301"]:
        assert tok.encode(text).ids == []
    ids, lengths = encode_padded(tok, ["\u200f"], max_tokens)
    assert ids.tolist() == [[PAD_ID]] and lengths.tolist() == [0]


def test_unknown_characters_and_words_map_to_unk(tok: Tokenizer):
    assert tok.encode("\U0001f600").ids == [UNK_ID]
    assert tok.encode("great \U0001f600 movie").tokens == ["great", UNK_TOKEN, "movie"]
    assert tok.encode("x" * 10_000).ids == [UNK_ID]  # over WordPiece's per-word limit


def test_truncation_keeps_the_first_max_tokens(tok: Tokenizer, max_tokens: int):
    text = " ".join(["good"] * (max_tokens + 50)) + " terrible"
    ids, lengths = encode_padded(tok, [text, "bad"], max_tokens)
    assert lengths.tolist() == [max_tokens, 1]
    assert ids.shape == (2, max_tokens)
    assert set(ids[0].tolist()) == {tok.token_to_id("good")}
    assert ids[1, 1:].tolist() == [PAD_ID] * (max_tokens - 1)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_any_string_encodes_within_vocab(text: str):
    tok = _tiny()
    ids, lengths = encode_padded(tok, [text], 64)
    assert ids.shape[1] >= 1 and 0 <= lengths[0] <= 64
    assert ids.min() >= 0 and ids.max() < tok.get_vocab_size()
    # Normalisation is idempotent on what it produces.
    norm = tok.normalizer.normalize_str(text)
    assert tok.normalizer.normalize_str(norm) == norm
    assert unicodedata.is_normalized("NFKD", norm)


def test_build_tokenizer_requires_pad_zero_unk_one():
    with pytest.raises(ValueError, match="PAD"):
        build_tokenizer({UNK_TOKEN: 0, PAD_TOKEN: 1})


def test_init_embeddings_copies_pretrained_rows():
    full = {"[PAD]": 0, "[UNK]": 1, "not": 2, "'": 3, "##s": 4, "movie": 5}
    table = np.arange(6 * 3, dtype=np.float32).reshape(6, 3)
    vocab = {"[PAD]": 0, "[UNK]": 1, "n't": 2, "'s": 3, "movie": 4}
    out = init_embeddings(vocab, full, table)
    np.testing.assert_array_equal(out[0], 0)
    np.testing.assert_array_equal(out[2], table[2])  # n't starts as "not"
    np.testing.assert_array_equal(out[3], table[[3, 4]].mean(axis=0))
    np.testing.assert_array_equal(out[4], table[5])


def test_tiny_tokenizer_survives_a_save_and_load(tmp_path: Path):
    tok = _tiny()
    tok.save(str(tmp_path / "tokenizer.json"))
    again = Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    text = "The movies didn't LIKE it!"
    assert again.encode(text).ids == tok.encode(text).ids
    assert again.encode(text).tokens == ["the", "movie", "##s", "did", "n't", "like", "it", "!"]


def test_pruning_the_vocabulary_does_not_change_training_tokens():
    from training.sentiment_pipeline import SST_TRAIN
    from training.sentiment_train import read_tsv

    texts = read_tsv(SST_TRAIN)[0][:1000]
    full = minilm_vocab(minilm_dir())
    vocab = pruned_vocab(full, texts)
    assert list(vocab)[:2] == [PAD_TOKEN, UNK_TOKEN] and set(CONTRACTIONS) <= set(vocab)
    assert len(vocab) < len(full)
    whole = dict(full)
    for c in CONTRACTIONS:
        whole.setdefault(c, len(whole))
    reference = build_tokenizer(reorder_specials(whole))
    pruned = build_tokenizer(vocab)
    for a, b in zip(reference.encode_batch(texts), pruned.encode_batch(texts), strict=True):
        assert a.tokens == b.tokens
