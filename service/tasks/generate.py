"""Generation task: a recurrent language model served with continuous batching. No HTTP here.

The manifest names the graph's token input, its state inputs/outputs ``[L, B, H]`` and its logits
output ``[B, V]`` (last step only); one graph serves prefill (T = prompt length) and decode (T = 1).
The vocabulary ships beside the graph (``vocab.json``, checksummed): token id i is ``chars[i]``.
A prompt character outside it is refused by position, never dropped.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, cast

import anyio.to_thread
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from service import metrics
from service.config import Settings
from service.drift.loader import drift_observer
from service.drift.monitor import NO_DRIFT, DriftObserver
from service.exceptions import ErrorDetail, InvalidInputError, QueueFullError
from service.runtime.continuous import ContinuousScheduler
from service.runtime.inference import ModelRunner
from service.runtime.manifest import ManifestError, ModelManifest, TensorSpec, task_parameters
from service.runtime.session import generation_lanes
from service.runtime.step_model import Job, StepGraph
from service.tasks.generate_stream import GenerationRequest, GenerationStream
from service.tasks.sampling import pick_tokens

WARM_UP_PROMPT = "ROMEO:\n"
# At most this many unknown characters are listed in one error (the prompt may be thousands long).
MAX_REPORTED_CHARACTERS = 10


class GenerateParameters(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)

    vocab: str
    num_layers: Annotated[int, Field(gt=0)]
    hidden_size: Annotated[int, Field(gt=0)]
    vocab_size: Annotated[int, Field(gt=1)]
    state_inputs: Annotated[list[str], Field(min_length=1)]
    state_outputs: Annotated[list[str], Field(min_length=1)]
    token_input: str
    logits_output: str


@dataclass(frozen=True)
class FieldNames:
    """What the client called each field, so an error's loc points at what was sent."""

    prompt: str = "prompt"
    max_new_tokens: str = "max_new_tokens"


class GenerateHandler:
    task = "generate"
    drift: DriftObserver = NO_DRIFT

    def __init__(
        self,
        manifest: ModelManifest,
        params: GenerateParameters,
        pieces: list[str],
        runner: ModelRunner,
        settings: Settings,
    ) -> None:
        self.manifest = manifest
        self.params = params
        self.pieces = pieces
        self._ids = {piece: i for i, piece in enumerate(pieces)}
        self._runner = runner
        self._graph = StepGraph(
            token_input=params.token_input,
            state_inputs=tuple(params.state_inputs),
            state_outputs=tuple(params.state_outputs),
            logits_output=params.logits_output,
            num_layers=params.num_layers,
            hidden_size=params.hidden_size,
        )
        self._metrics = metrics.GenerationMetrics(manifest.name)
        lanes = generation_lanes(settings)
        self._lanes = [
            ContinuousScheduler(
                runner,
                self._graph,
                _pick_tokens,
                settings.prefill_chunk_tokens,
                self._metrics,
                f"{manifest.name}/{manifest.version}" + (f"#{lane}" if lanes > 1 else ""),
                settings.generation_scheduling,
            )
            for lane in range(lanes)
        ]
        self._lane_streams = [0] * lanes
        self._lane_of: dict[GenerationStream, int] = {}
        for scheduler in self._lanes:
            runner.add_close_hook(scheduler.close)
        self._max_prompt_chars = settings.max_prompt_chars
        self._max_new_tokens = settings.max_new_tokens
        self._max_streams = settings.max_streams_per_model
        self._active: set[GenerationStream] = set()

    @classmethod
    def from_manifest(
        cls, manifest: ModelManifest, runner: ModelRunner, settings: Settings, version_dir: Path
    ) -> GenerateHandler:
        params = task_parameters(GenerateParameters, manifest)
        _check_graph(manifest, params)
        if params.vocab not in manifest.files:
            raise ManifestError(f"vocabulary {params.vocab!r} is not listed (and checksummed) in files")
        try:
            chars = json.loads((version_dir / params.vocab).read_text(encoding="utf-8"))["chars"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ManifestError(f'{params.vocab}: not a {{"chars": [...]}} vocabulary: {exc}') from exc
        if not isinstance(chars, list) or not all(isinstance(c, str) and len(c) == 1 for c in chars):
            raise ManifestError(f"{params.vocab}: chars must be a list of single characters")
        if len(set(chars)) != len(chars) or len(chars) != params.vocab_size:
            raise ManifestError(
                f"{params.vocab}: {len(chars)} chars, must be {params.vocab_size} distinct ones"
            )
        handler = cls(manifest, params, chars, runner, settings)
        handler.drift = drift_observer(manifest, version_dir, settings)
        return handler

    @property
    def public_parameters(self) -> dict[str, Any]:
        return {**self.params.model_dump(), "characters": "".join(self.pieces)}

    @property
    def active_streams(self) -> int:
        return len(self._active)

    def warm_up(self) -> None:
        """Prefill and two decode steps, so the first request does not pay ORT's first-run cost."""
        graph = self._graph
        ids = self.encode(WARM_UP_PROMPT, FieldNames())
        feeds = {
            graph.token_input: ids[None, :],
            **dict(zip(graph.state_inputs, graph.zero_state(1), strict=True)),
        }
        for _ in range(3):
            out = self._runner.run_stateful(feeds)
            logits = out[graph.logits_output]
            if logits.shape != (1, self.params.vocab_size) or not np.isfinite(logits).all():
                raise ManifestError(
                    f"warm-up produced logits of shape {list(logits.shape)} or non-finite values"
                )
            token = np.asarray([[int(np.argmax(logits[0]))]], dtype=np.int64)
            feeds = {
                graph.token_input: token,
                **{i: out[o] for i, o in zip(graph.state_inputs, graph.state_outputs, strict=True)},
            }

    def encode(self, prompt: str, names: FieldNames) -> np.ndarray[Any, Any]:
        ids = self._ids
        unknown = [(i, ch) for i, ch in enumerate(prompt) if ch not in ids]
        # Every protocol's prompt passes here, refused ones too (the out-of-vocabulary share is a feature).
        self.drift.observe(np.array([[len(prompt), 1.0 if unknown else 0.0]]), None)
        if unknown:
            details = [
                ErrorDetail((names.prompt,), f"character {ch!r} (U+{ord(ch):04X}) at position {i} is not in "
                            "the model's vocabulary")
                for i, ch in unknown[:MAX_REPORTED_CHARACTERS]
            ]  # fmt: skip
            more = len(unknown) - len(details)
            suffix = f" (and {more} more)" if more > 0 else ""
            raise InvalidInputError(
                f"the prompt has {len(unknown)} character(s) outside the model's vocabulary{suffix}", details
            )
        return np.fromiter((ids[ch] for ch in prompt), dtype=np.int64, count=len(prompt))

    def start(self, request: GenerationRequest, names: FieldNames) -> GenerationStream:
        """Admit a generation and hand it to the scheduler; call on the event loop."""
        self._validate(request, names)
        ids = self.encode(request.prompt, names)
        if len(self._active) >= self._max_streams:
            metrics.reject(self.manifest.name, "queue_full")
            raise QueueFullError(
                f"model {self.manifest.name!r} is running {self._max_streams} generations "
                "(max_streams_per_model); retry shortly"
            )
        stream = GenerationStream(ids, self.pieces, request, asyncio.get_running_loop(), self._release)
        self._active.add(stream)
        self._metrics.active_streams.inc()
        self._runner.count_in_flight(1)
        lane = min(range(len(self._lanes)), key=self._lane_streams.__getitem__)
        self._lane_of[stream] = lane
        self._lane_streams[lane] += 1
        self._lanes[lane].submit(stream)
        return stream

    # --- TensorTask: the raw graph over V2 (one step, state in and out), with its inputs checked ---

    @property
    def tensor_inputs(self) -> list[TensorSpec]:
        return list(self.manifest.inputs)

    @property
    def tensor_outputs(self) -> list[TensorSpec]:
        return list(self.manifest.outputs)

    async def infer_tensors(
        self, inputs: Mapping[str, np.ndarray[Any, Any]]
    ) -> dict[str, np.ndarray[Any, Any]]:
        """Run the graph once as sent (no sampling, no scheduler): what a V2 client of an LSTM expects.

        Token ids outside the vocabulary would make onnxruntime fail (a 500); they, mismatched batch
        axes and non-finite state are refused by position instead.
        """
        graph = self._graph
        tokens = inputs[graph.token_input]
        rows, steps = tokens.shape
        errors: list[ErrorDetail] = []
        if rows == 0 or steps == 0:
            errors.append(ErrorDetail((graph.token_input,), "needs at least one row and one step"))
        elif steps > self._max_prompt_chars:
            errors.append(
                ErrorDetail((graph.token_input,), f"{steps} steps; at most {self._max_prompt_chars}")
            )
        bad = np.argwhere((tokens < 0) | (tokens >= self.params.vocab_size))
        errors += [
            ErrorDetail(
                (graph.token_input, int(i), int(t)),
                f"token id {int(tokens[i, t])} is not in 0..{self.params.vocab_size - 1}",
            )
            for i, t in bad[:MAX_REPORTED_CHARACTERS]
        ]
        for name in graph.state_inputs:
            state = inputs[name]
            if state.shape[1] != rows:
                errors.append(
                    ErrorDetail(
                        (name,), f"batch axis (1) has {state.shape[1]} rows; {graph.token_input} has {rows}"
                    )
                )
            elif not np.isfinite(state).all():
                errors.append(ErrorDetail((name,), "contains NaN or infinity"))
        if errors:
            raise InvalidInputError("the tensors do not fit this model", errors)
        feeds = {
            name: np.ascontiguousarray(inputs[name]) for name in (graph.token_input, *graph.state_inputs)
        }
        return await anyio.to_thread.run_sync(self._runner.run_stateful, feeds, abandon_on_cancel=True)

    def _release(self, stream: GenerationStream) -> None:
        if stream in self._active:
            self._active.discard(stream)
            self._lane_streams[self._lane_of.pop(stream)] -= 1
            self._metrics.active_streams.dec()
            self._runner.count_in_flight(-1)

    def _validate(self, request: GenerationRequest, names: FieldNames) -> None:
        errors: list[ErrorDetail] = []
        if not request.prompt:
            errors.append(ErrorDetail((names.prompt,), "the prompt must have at least one character"))
        elif len(request.prompt) > self._max_prompt_chars:
            errors.append(
                ErrorDetail(
                    (names.prompt,), f"{len(request.prompt)} characters; at most {self._max_prompt_chars}"
                )
            )
        if request.max_new_tokens > self._max_new_tokens:
            errors.append(
                ErrorDetail(
                    (names.max_new_tokens,), f"{request.max_new_tokens}; at most {self._max_new_tokens}"
                )
            )
        if errors:
            raise InvalidInputError("the request does not fit this model", errors)


def _pick_tokens(jobs: Sequence[Job], logits: np.ndarray[Any, Any]) -> list[int]:
    return pick_tokens([cast(GenerationStream, job).sampler for job in jobs], logits)


def _check_graph(manifest: ModelManifest, params: GenerateParameters) -> None:
    """The tensors the parameters name must exist with the shapes the scheduler relies on."""
    inputs = {s.name: s for s in manifest.inputs}
    outputs = {s.name: s for s in manifest.outputs}
    state = [params.num_layers, -1, params.hidden_size]
    problems: list[str] = []
    token = inputs.get(params.token_input)
    if token is None or token.datatype != "INT64" or len(token.shape) != 2:
        problems.append(f"input {params.token_input!r} must be INT64 [B, T]")
    logits = outputs.get(params.logits_output)
    if logits is None or logits.datatype != "FP32" or logits.shape[1:] != [params.vocab_size]:
        problems.append(f"output {params.logits_output!r} must be FP32 [B, {params.vocab_size}]")
    if len(params.state_inputs) != len(params.state_outputs):
        problems.append("state_inputs and state_outputs must pair up")
    for name, specs in [
        *((n, inputs) for n in params.state_inputs),
        *((n, outputs) for n in params.state_outputs),
    ]:
        spec = specs.get(name)
        if spec is None or spec.datatype != "FP32" or spec.shape != state:
            problems.append(f"state tensor {name!r} must be FP32 {state}")
    named = {params.token_input, *params.state_inputs}
    if set(inputs) != named:
        problems.append(f"graph inputs {sorted(inputs)} must be exactly {sorted(named)}")
    if problems:
        raise ManifestError("generate model: " + "; ".join(problems))
