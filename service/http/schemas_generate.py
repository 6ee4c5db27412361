"""Bodies of the generation routes: seqserve's /v1/generate and the OpenAI-compatible /v1/completions.

Strict like every request here (no coercion, no unknown keys), except that /v1/completions accepts
the OpenAI fields a client may send with their neutral values, and refuses any other value by name
rather than ignoring it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from service.http.schemas_v1 import ModelRef, UnicodeStr, _Strict
from service.tasks.sampling import MAX_SEED

Temperature = Annotated[float, Field(ge=0.0, le=100.0, allow_inf_nan=False)]
TopP = Annotated[float, Field(gt=0.0, le=1.0, allow_inf_nan=False)]
Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]
StopString = Annotated[UnicodeStr, Field(min_length=1, max_length=256)]
MAX_STOP_STRINGS = 16


class GenerateRequest(_Strict):
    model: UnicodeStr | None = Field(
        default=None, description="Model name; default: the first generate model."
    )
    prompt: UnicodeStr = Field(
        description=(
            "Text to continue; every character must be in the model's vocabulary (limit: max_prompt_chars)."
        )
    )
    max_new_tokens: Annotated[int, Field(ge=1)] = Field(
        default=128, description="Most tokens to generate (limit: the max_new_tokens setting)."
    )
    temperature: Temperature = Field(default=1.0, description="Softmax temperature; 0 = greedy (argmax).")
    top_k: Annotated[int, Field(ge=1)] | None = Field(
        default=None, description="Sample only among the k most likely tokens; null = all."
    )
    top_p: TopP = Field(default=1.0, description="Nucleus sampling: the smallest set with this much mass.")
    seed: Seed | None = Field(
        default=None, description="Seed of this stream's own generator: same request + seed = same text."
    )
    stop: Annotated[list[StopString], Field(max_length=MAX_STOP_STRINGS)] = Field(
        default_factory=list,
        description="Generation ends before the first of these strings; the string is not returned.",
    )
    stream: bool = Field(default=False, description="Send Server-Sent Events as text is generated.")


class GenerateResponse(BaseModel):
    model: ModelRef
    text: str = Field(description="Generated text (the prompt is not repeated; a stop string is cut).")
    tokens: int = Field(description="Tokens generated, including any that formed the stop string.")
    finish_reason: Literal["length", "stop"]


class GenerateChunk(BaseModel):
    """One SSE event of a streamed /v1/generate: `data: {json}`."""

    text: str = Field(description="New text since the previous event.")
    tokens: int = Field(description="Tokens generated so far.")
    finish_reason: Literal["length", "stop", "timeout", "error"] | None = Field(
        description="null until the last event; timeout/error come with an error object."
    )


class StreamOptions(_Strict):
    include_usage: bool = False


class CompletionRequest(_Strict):
    """OpenAI's fields; null means the field's default, as in OpenAI's API."""

    model: UnicodeStr = Field(description="Model name, as /v1/models lists it.")
    prompt: UnicodeStr = Field(description="One prompt string (token-id or list prompts are not supported).")
    max_tokens: Annotated[int, Field(ge=1)] | None = Field(default=None, description="Default 16, as OpenAI.")
    temperature: Temperature | None = Field(default=None, description="Default 1; 0 = greedy.")
    top_p: TopP | None = Field(default=None, description="Default 1.")
    top_k: Annotated[int, Field(ge=1)] | None = Field(default=None, description="vLLM extension; null = all.")
    seed: Seed | None = None
    stop: StopString | Annotated[list[StopString], Field(max_length=MAX_STOP_STRINGS)] | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    n: Annotated[int, Field(ge=1)] | None = Field(default=None, description="Only 1 is supported.")
    # Accepted only at their neutral value, so a client that sends them is not silently misunderstood.
    echo: bool | None = None
    logprobs: int | None = None
    best_of: int | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    suffix: str | None = None
    logit_bias: dict[str, float] | None = None
    user: str | None = Field(default=None, description="Opaque end-user id; accepted and not used.")


class CompletionChoice(BaseModel):
    text: str
    index: int
    finish_reason: Literal["length", "stop"] | None
    logprobs: None = None


class CompletionUsage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class CompletionResponse(BaseModel):
    id: str
    object: Literal["text_completion"]
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: CompletionUsage | None = None
    system_fingerprint: str | None = None


# The values of the options seqserve does not implement that mean "not used" (null is always one).
_NEUTRAL: dict[str, tuple[Any, ...]] = {
    "n": (1,), "best_of": (1,), "echo": (False,), "logprobs": (), "frequency_penalty": (0,),
    "presence_penalty": (0,), "suffix": ("",), "logit_bias": ({},),
}  # fmt: skip


def unsupported_completion_fields(body: CompletionRequest) -> list[tuple[str, Any]]:
    """(field, value) for every OpenAI option sent with a value this server cannot honour."""
    problems = []
    for name, neutral in _NEUTRAL.items():
        sent = getattr(body, name)
        if sent is not None and sent not in neutral:
            problems.append((name, sent))
    return problems
