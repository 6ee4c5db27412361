"""Request and response bodies of the HTTP API (pydantic v2), so OpenAPI documents every field.

Requests are strict: no type coercion ("1" is not a number, true is not 1.0), no NaN/Infinity, no
unknown keys. Anything the client sent is either used as sent or rejected with a field-level error.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from service.http import examples

FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]


def _valid_unicode(value: str) -> str:
    # JSON may carry "\ud800"; Python accepts it, but it is not text: encoders (and so the response,
    # and the tokenizer) would fail on it later. Refuse it where it was sent.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("contains a lone UTF-16 surrogate (invalid Unicode)") from exc
    return value


UnicodeStr = Annotated[str, AfterValidator(_valid_unicode)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class SeriesIn(_Strict):
    id: UnicodeStr | None = Field(default=None, description="Opaque client label, echoed back unchanged.")
    values: list[FiniteFloat] = Field(
        description="Raw observations, oldest first. Only the most recent context_length values are used."
    )


class ForecastRequest(_Strict):
    # A real M4 series, so /docs' "Try it out" returns a forecast (service/http/examples.py).
    model_config = ConfigDict(json_schema_extra={"examples": [examples.FORECAST_REQUEST]})

    model: UnicodeStr | None = Field(
        default=None, description="Model name; default: the first forecast model by name."
    )
    horizon: Annotated[int, Field(ge=1)] | None = Field(
        default=None, description="Steps ahead, 1..the model's horizon; default: the model's horizon."
    )
    quantiles: list[FiniteFloat] | None = Field(
        default=None, description="Subset of the model's quantiles to return; default: all of them."
    )
    series: list[SeriesIn] = Field(
        min_length=1, description="Series to forecast (limit: max_series_per_request)."
    )


class SentimentRequest(_Strict):
    model_config = ConfigDict(json_schema_extra={"examples": [examples.SENTIMENT_REQUEST]})

    model: UnicodeStr | None = Field(
        default=None, description="Model name; default: the first sentiment model by name."
    )
    texts: list[UnicodeStr] = Field(
        min_length=1,
        description=(
            "Raw texts, any casing and punctuation (limits: max_texts_per_request texts, max_text_chars "
            "characters each). Texts longer than the model's max_tokens are cut to their first max_tokens "
            "tokens, and the result says truncated: true."
        ),
    )


class ModelRef(BaseModel):
    name: str
    version: int


class SeriesForecastOut(BaseModel):
    id: str | None = Field(description="The client's id, or null if none was sent.")
    point: list[float] = Field(
        description=(
            "Point forecast: the 0.5 quantile (median). The model is trained with pinball (quantile) loss, "
            "so its point forecast is the median, not the mean."
        )
    )
    quantiles: dict[str, list[float]] = Field(
        description='Forecast per quantile, keyed as the manifest writes them ("0.05", "0.1", ...).'
    )
    context_length_used: int = Field(
        description="How many of the most recent values the model actually used."
    )


class ForecastResponse(BaseModel):
    model: ModelRef
    forecasts: list[SeriesForecastOut]


class TensorSpecOut(BaseModel):
    name: str
    datatype: str
    shape: list[int]


class ModelInfo(BaseModel):
    name: str
    version: int | None
    task: str | None
    state: Literal["ready", "failed", "unloaded"]
    error: str | None = Field(description="Why the model is not serving; null when ready.")
    versions: list[int] = Field(
        default_factory=list,
        description="Every loaded (ready) version; `version` is the one unversioned requests get.",
    )
    provider: str | None = Field(description="onnxruntime execution provider actually in use.")
    model_sha256: str | None
    inputs: list[TensorSpecOut] | None
    outputs: list[TensorSpecOut] | None
    parameters: dict[str, Any] | None
    evaluation: dict[str, Any] | None
    last_reload_error: str | None = Field(
        default=None,
        description=(
            "Why the latest POST /v1/models/{name}/reload was refused (the version above keeps serving); "
            "null when none was refused since the last successful load."
        ),
    )


class ModelList(BaseModel):
    models: list[ModelInfo]


class ReloadChange(BaseModel):
    previous_version: int | None = Field(description="Version served before the reload; null if none was.")
    version: int = Field(description="Version serving now.")
    previous_model_sha256: str | None
    model_sha256: str | None
    changed: bool = Field(description="True when the version or the model file differs from before.")


class ReloadWorkers(BaseModel):
    expected: int = Field(description="Worker processes serving (SEQSERVE_WORKERS).")
    confirmed: int = Field(
        description="Workers confirmed to serve this version when the response was sent (this one included)."
    )


class ReloadResponse(BaseModel):
    model: ModelInfo = Field(description="The model as it is served after the swap.")
    change: ReloadChange
    workers: ReloadWorkers = Field(
        description="How many worker processes serve the new version; below expected after a 10 s wait."
    )


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready"]
    models: list[str]


class ErrorDetailOut(BaseModel):
    loc: list[str | int] = Field(
        description='Path to the offending field, e.g. ["body", "series", 2, "values"].'
    )
    msg: str


class ErrorBody(BaseModel):
    type: str
    message: str
    details: list[ErrorDetailOut]


class ErrorResponse(BaseModel):
    error: ErrorBody


class SentimentOut(BaseModel):
    label: str = Field(description="The most probable label.")
    score: float = Field(description="Probability of that label.")
    probabilities: dict[str, float] = Field(description="Probability per label; sums to 1.")
    truncated: bool = Field(description="True when the text had more than max_tokens tokens and was cut.")
    tokens_used: int = Field(description="Tokens the model read (at most max_tokens).")


class SentimentResponse(BaseModel):
    model: ModelRef
    results: list[SentimentOut] = Field(description="One result per text, in request order.")
