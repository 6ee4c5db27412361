"""Bodies of /v1/classify: sequences of feature vectors in, one label per sequence out."""

from __future__ import annotations

from pydantic import BaseModel, Field

from service.http.schemas_v1 import FiniteFloat, ModelRef, UnicodeStr, _Strict


class ClassifyRequest(_Strict):
    model: UnicodeStr | None = Field(
        default=None, description="Model name; default: the first classify model."
    )
    sequences: list[list[list[FiniteFloat]]] = Field(
        min_length=1,
        description=(
            "Sequences to classify, each [T][F] numbers as the model's parameters say "
            "(mnist-rows: 28 rows of 28 raw pixels in 0..255); limit: max_sequences_per_request."
        ),
    )


class ClassifyOut(BaseModel):
    label: str = Field(description="The most probable label.")
    score: float = Field(description="Probability of that label.")
    probabilities: dict[str, float] = Field(description="Probability per label, in the manifest's order.")


class ClassifyResponse(BaseModel):
    model: ModelRef
    results: list[ClassifyOut] = Field(description="One result per sequence, in request order.")
