"""Sentiment task: text validation, tokenization with the model's own tokenizer.json, labels. No HTTP here.

The tokenizer file ships beside the graph and is checksummed by the manifest, so the service tokenizes
exactly as training did. The only rule reproduced by hand is the manifest's encoding rule: keep the
first ``max_tokens`` ids, send each row's length, right-pad with ``pad_id``. The graph masks padding,
so a text's answer does not depend on what else is in its batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import anyio.to_thread
import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from tokenizers import Encoding, Tokenizer

from service import metrics
from service.config import Settings
from service.drift.loader import drift_observer
from service.drift.monitor import NO_DRIFT, DriftObserver
from service.exceptions import ErrorDetail, InvalidInputError
from service.runtime.inference import ModelRunner
from service.runtime.manifest import ManifestError, ModelManifest, TensorSpec, task_parameters

Tensor = np.ndarray[Any, Any]

# The Open Inference Protocol view: raw texts in, probabilities and the label out.
V2_TEXT_INPUT = "text"
V2_LABEL_OUTPUT = "label"
WARM_UP_TEXTS = ("a gripping , funny and moving film .", "dull .")


# Up to this many characters a request is tokenized on the event loop: about 0.6 us per character
# (measured on the shipped tokenizers), so at most about 1 ms, against a thread hand-off that cost the
# loop more CPU than a one-review request's tokenization itself (96 vs 54 us measured).
INLINE_TOKENIZE_CHARS = 1500


def _has_lone_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


class SentimentParameters(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)

    labels: Annotated[list[str], Field(min_length=2)]
    max_tokens: Annotated[int, Field(gt=0)]
    tokenizer: str
    pad_id: Annotated[int, Field(ge=0)]
    truncation: Literal["keep_first"]
    padding: Literal["right"]


@dataclass(frozen=True)
class SentimentResult:
    label: str
    score: float
    probabilities: dict[str, float]
    truncated: bool
    tokens_used: int


class SentimentHandler:
    task = "sentiment"
    drift: DriftObserver = NO_DRIFT

    def __init__(
        self,
        manifest: ModelManifest,
        params: SentimentParameters,
        tokenizer: Tokenizer,
        runner: ModelRunner,
        settings: Settings,
    ) -> None:
        self.manifest = manifest
        self.params = params
        self._label_counts = metrics.register_sentiment_model(manifest.name, params.labels)
        self._tokenizer = tokenizer
        self._runner = runner
        self._ids_name, self._lengths_name = (spec.name for spec in manifest.inputs)
        self._output_name = manifest.outputs[0].name
        self._max_texts = settings.max_texts_per_request
        self._max_chars = settings.max_text_chars

    @classmethod
    def from_manifest(
        cls, manifest: ModelManifest, runner: ModelRunner, settings: Settings, version_dir: Path
    ) -> SentimentHandler:
        params = task_parameters(SentimentParameters, manifest)
        specs = [(s.datatype, len(s.shape)) for s in manifest.inputs]
        if specs != [("INT64", 2), ("INT64", 1)]:
            raise ManifestError(
                f"sentiment inputs must be INT64 ids [B, T] and INT64 lengths [B], got {specs}"
            )
        out = manifest.outputs
        if len(out) != 1 or out[0].datatype != "FP32" or out[0].shape[1:] != [len(params.labels)]:
            raise ManifestError(f"sentiment output must be FP32 [B, {len(params.labels)}] probabilities")
        if params.tokenizer not in manifest.files:
            raise ManifestError(f"tokenizer {params.tokenizer!r} is not listed (and checksummed) in files")
        tokenizer = Tokenizer.from_file(str(version_dir / params.tokenizer))
        # The graph masks right-padding of input_ids, so texts of any length may share a batch.
        runner.set_paddable({manifest.inputs[0].name: params.pad_id})
        handler = cls(manifest, params, tokenizer, runner, settings)
        handler.drift = drift_observer(manifest, version_dir, settings)
        return handler

    @property
    def public_parameters(self) -> dict[str, Any]:
        return self.params.model_dump()

    def warm_up(self) -> None:
        probs = self._runner.run_sync(self._encode(self._tokenizer.encode_batch(list(WARM_UP_TEXTS)))[0])
        if not np.isfinite(probs[self._output_name]).all():
            raise ManifestError("warm-up produced non-finite probabilities")

    @property
    def tensor_inputs(self) -> list[TensorSpec]:
        # V2 clients send raw UTF-8 texts; tokenization stays server-side, with the model's tokenizer.json.
        return [TensorSpec(name=V2_TEXT_INPUT, datatype="BYTES", shape=[-1])]

    @property
    def tensor_outputs(self) -> list[TensorSpec]:
        return [
            TensorSpec(name=self._output_name, datatype="FP32", shape=[-1, len(self.params.labels)]),
            TensorSpec(name=V2_LABEL_OUTPUT, datatype="BYTES", shape=[-1]),
        ]

    async def infer_tensors(self, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        texts: list[str] = []
        errors: list[ErrorDetail] = []
        for index, raw in enumerate(inputs[V2_TEXT_INPUT]):
            try:
                texts.append(raw.decode("utf-8"))
            except UnicodeDecodeError as exc:
                errors.append(ErrorDetail((V2_TEXT_INPUT, index), f"text is not valid UTF-8: {exc.reason}"))
        if errors:
            raise InvalidInputError("some texts are not valid UTF-8", errors)
        probs, _, _ = await self._probabilities(texts, V2_TEXT_INPUT)
        labels = np.array([self.params.labels[i].encode() for i in probs.argmax(axis=1)], dtype=object)
        self._label_counts.count(label.decode() for label in labels)
        return {self._output_name: probs, V2_LABEL_OUTPUT: labels}

    async def classify(self, texts: Sequence[str]) -> list[SentimentResult]:
        probs, lengths, full_lengths = await self._probabilities(texts, "texts")
        labels = self.params.labels
        results = []
        for row, used, full in zip(probs.astype(np.float64), lengths, full_lengths, strict=True):
            best = int(row.argmax())
            results.append(
                SentimentResult(
                    label=labels[best],
                    score=float(row[best]),
                    probabilities={label: float(p) for label, p in zip(labels, row, strict=True)},
                    truncated=full > used,
                    tokens_used=int(used),
                )
            )
        self._label_counts.count(r.label for r in results)
        return results

    async def _probabilities(
        self, texts: Sequence[str], root: str
    ) -> tuple[np.ndarray[Any, Any], list[int], list[int]]:
        """Validate, tokenize and run: the one path both protocols take (and so one micro-batcher)."""
        self._validate(texts, root)
        if sum(map(len, texts)) <= INLINE_TOKENIZE_CHARS:
            encodings = self._tokenize(texts)
        else:
            # Tokenizing a full request of long texts takes milliseconds; keep it off the event loop.
            encodings = await anyio.to_thread.run_sync(self._tokenize, texts)
        empty = [ErrorDetail((root, i), "text has no tokens after normalization") for i, e in
                 enumerate(encodings) if not e.ids]  # fmt: skip
        if empty:
            raise InvalidInputError("some texts contain nothing the tokenizer can read", empty)
        feeds, lengths, full_lengths = self._encode(encodings)
        probs = (await self._runner.run(feeds))[self._output_name]
        self.drift.observe((texts, feeds[self._ids_name], full_lengths), probs)  # queued, not computed
        return probs, lengths, full_lengths

    def _tokenize(self, texts: Sequence[str]) -> list[Encoding]:
        # encode_batch_fast leaves out the character offsets, which nothing here reads: the same ids in
        # less time, also for one text (tokenizers 0.23.3, the bench's 64 SST-2 reviews one at a time, with
        # TOKENIZERS_PARALLELISM=false as the workers run: 22.0-22.6 us each against 24.9-25.0 for
        # encode and 25.8-26.2 for encode_batch).
        return self._tokenizer.encode_batch_fast(list(texts))

    def _validate(self, texts: Sequence[str], root: str) -> None:
        errors: list[ErrorDetail] = []
        if not texts:
            errors.append(ErrorDetail((root,), "at least one text is required"))
        if len(texts) > self._max_texts:
            errors.append(
                ErrorDetail((root,), f"at most {self._max_texts} texts per request, got {len(texts)}")
            )
        for i, text in enumerate(texts):
            if _has_lone_surrogate(text):
                # JSON can carry "\ud800"; it is not text, and silently replacing it would alter the input.
                errors.append(
                    ErrorDetail((root, i), "text contains a lone UTF-16 surrogate (invalid Unicode)")
                )
            elif not text.strip():
                errors.append(ErrorDetail((root, i), "text is empty or whitespace only"))
            elif len(text) > self._max_chars:
                errors.append(ErrorDetail((root, i), f"{len(text)} characters; at most {self._max_chars}"))
        if errors:
            raise InvalidInputError("the request does not fit this model", errors)

    def _encode(
        self, encodings: Sequence[Any]
    ) -> tuple[dict[str, np.ndarray[Any, Any]], list[int], list[int]]:
        """Apply the manifest's rule: keep the first max_tokens ids, right-pad with pad_id, send lengths."""
        kept = [e.ids[: self.params.max_tokens] for e in encodings]
        width = max([1, *map(len, kept)])
        ids = np.full((len(kept), width), self.params.pad_id, dtype=np.int64)
        for row, seq in enumerate(kept):
            ids[row, : len(seq)] = seq
        lengths = [len(seq) for seq in kept]
        feeds = {self._ids_name: ids, self._lengths_name: np.asarray(lengths, dtype=np.int64)}
        return feeds, lengths, [len(e.ids) for e in encodings]
