"""Service settings: one typed object, read from ``SEQSERVE_*`` environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from service.config_forms import parse_list, parse_mapping
from service.runtime.versions import VersionPolicy

MIB = 1024 * 1024
# What a /v1 request without "model" gets, per task, when the repository holds these models: the
# fastest forecaster (the ensemble costs several times more per row), and the distilled sentiment model
# (same architecture and cost as sst2-bilstm, higher accuracy). README, "What it serves", says why.
BUILTIN_DEFAULT_MODELS = {"forecast": "m4-hourly", "sentiment": "sst2-distilled"}


class Settings(BaseSettings):
    """Every knob the service has. Units live in the names so a value is never ambiguous."""

    # hide_input_in_errors: a rejected api_keys list must not print the keys in the startup error.
    model_config = SettingsConfigDict(
        env_prefix="SEQSERVE_", extra="forbid", frozen=True, hide_input_in_errors=True
    )

    model_repository: Path = Field(
        default=Path("models"), description="Root of the model repository: <name>/<version>/model.onnx."
    )
    providers: Literal["auto", "cpu", "cuda"] = Field(
        default="auto",
        description="auto = CUDA when onnxruntime has it, else CPU; cuda = refuse to start without CUDA.",
    )
    ort_intra_op_threads: int = Field(
        default=0, ge=0, description="Threads inside one operator; 0 = CPU cores divided by workers."
    )
    ort_inter_op_threads: int = Field(
        default=1, ge=0, description="Threads across operators; 0 = ORT default."
    )
    max_body_bytes: int = Field(default=MIB, gt=0, description="Largest request body accepted (413 above).")
    max_series_per_request: int = Field(default=256, gt=0, description="Most series in one forecast request.")
    max_series_length: int = Field(
        default=10_000,
        gt=0,
        description="Most raw values accepted per series (only the last context_length are used).",
    )
    max_texts_per_request: int = Field(default=256, gt=0, description="Most texts in one sentiment request.")
    max_text_chars: int = Field(
        default=5_000,
        gt=0,
        description="Most characters per text (422 above); tokens beyond max_tokens are cut.",
    )
    max_prompt_chars: int = Field(
        default=4_096, gt=0, description="Most characters in a generation prompt (422 above)."
    )
    max_new_tokens: int = Field(
        default=2_048,
        gt=0,
        description="Largest max_new_tokens / max_tokens a generation may ask for (422 above).",
    )
    max_streams_per_model: int = Field(
        default=128,
        gt=0,
        description=(
            "Generations one worker process runs at once per model (prefilling or decoding); "
            "503 + Retry-After above."
        ),
    )
    prefill_chunk_tokens: int = Field(
        default=16,
        gt=0,
        description=(
            "Prompt tokens per prefill session.run (and about the most fed per scheduler iteration); a "
            "long prompt is fed in chunks between decode steps, so running streams wait at most about "
            "one chunk for it."
        ),
    )
    generation_timeout_seconds: float = Field(
        default=300.0,
        gt=0,
        description=(
            "Time budget of one generation, from admission to its last token (504, or a timeout event "
            "when streamed); apart from request_timeout_seconds because 2,048 tokens beside 63 other "
            "streams legitimately take tens of seconds."
        ),
    )
    batch_lanes: int = Field(
        default=0,
        ge=0,
        le=16,
        description=(
            "Micro-batches of one model that may run at once in a worker, each on its own thread. "
            "Session runs release the GIL, so with one ORT thread two lanes keep two cores busy from one "
            "worker. 0 = the CPU cores per worker divided by the ORT intra-op threads."
        ),
    )
    opentelemetry: bool = Field(
        default=False,
        description=(
            "FastAPI's native OpenTelemetry instrumentation (traces, metrics and logs to the globally "
            "configured providers, e.g. under opentelemetry-instrument). Off, FastAPI skips the provider "
            "checks it otherwise makes on every request."
        ),
    )
    generation_lanes: int = Field(
        default=0,
        ge=0,
        le=16,
        description=(
            "Continuous batches per generation model and worker, each with its own scheduler thread; a new "
            "stream joins the lane with the fewest. Session runs release the GIL, so with one ORT thread "
            "two lanes keep two cores busy where one lane alternates between its graph and its Python. "
            "0 = the CPU cores per worker divided by the ORT intra-op threads (lanes x threads = cores)."
        ),
    )
    generation_scheduling: Literal["continuous", "static", "sequential"] = Field(
        default="continuous",
        description=(
            "continuous = iteration-level batching (streams join and leave at every decode step). "
            "static and sequential are the generation benchmark's baselines, not for production: static lets "
            "new streams in only once the whole batch has finished; sequential runs one stream at a time."
        ),
    )
    max_sequences_per_request: int = Field(
        default=256, gt=0, description="Most sequences in one /v1/classify request."
    )
    batching_enabled: bool = Field(
        default=True, description="Coalesce rows of concurrent requests into one session.run per model."
    )
    max_queue_delay_seconds: float = Field(
        default=0.002,
        ge=0,
        description="Longest a queued row waits for its batch to fill (not applied when the model is idle).",
    )
    inline_max_seconds: float = Field(
        default=0.002,
        ge=0,
        description=(
            "When a model is idle, a batch expected to take at most this long runs on the event loop "
            "thread instead of the worker thread (saves two thread handoffs); 0 = always the worker thread."
        ),
    )
    max_queue_rows: int = Field(
        default=4096, gt=0, description="Rows waiting per model before requests get 503 + Retry-After."
    )
    workers: int = Field(default=1, gt=0, description="uvicorn worker processes (each loads every model).")
    reuse_port: bool = Field(
        default=True,
        description=(
            "With workers > 1, each worker listens on its own SO_REUSEPORT socket and the kernel spreads "
            "connections evenly; false = uvicorn's one shared socket, which was measured to give one "
            "worker most keep-alive connections (service/http/listeners.py). Ignored on port 0 or without "
            "SO_REUSEPORT."
        ),
    )
    reload_dir: Path | None = Field(
        default=None,
        description=(
            "Directory through which workers pass hot reloads to each other; set by the launcher "
            "(a fresh temporary directory) when workers > 1. None = one worker, nothing to pass on."
        ),
    )
    ort_allow_spinning: bool = Field(
        default=False,
        description="Let ORT's intra-op threads spin-wait; faster alone, but steals CPU from other workers.",
    )
    ort_cpu_mem_arena: bool = Field(
        default=True,
        description=(
            "ORT's CPU memory arena. It keeps the peak of the largest batch, which max_batch_size bounds; "
            "measured faster and with a lower peak than plain malloc, which fragments."
        ),
    )
    ort_shared_cpu_arena: bool = Field(
        default=True,
        description=(
            "With the CPU arena on, one arena shared by every session of the worker instead of one per "
            "session, which each kept its own peak (docs/memory.md); a model's weights still leave with it "
            "on unload, its share of the arena stays for the others."
        ),
    )
    memory_release_seconds: float = Field(
        default=5.0,
        ge=0,
        description=(
            "Seconds between returns of freed memory to the kernel in each worker: glibc's free heap pages "
            "(malloc_trim; each batch thread has its own malloc arena) and the free regions of ORT's CPU "
            "arena (on the next session.run), so a burst on one model does not keep its memory while "
            "others serve (docs/memory.md); 0 = never."
        ),
    )
    max_batch_size: int = Field(
        default=64, gt=0, description="Most rows in one micro-batch, and so in one session.run call."
    )
    batch_size_hints: bool = Field(
        default=True,
        description=(
            "Run a micro-batch as session.run calls of at most the manifest's measured "
            "serving.preferred_batch_size rows, when it was measured on the provider in use "
            "(training/batch_profile.py); false = one call per micro-batch."
        ),
    )
    request_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Inference time budget (504 above)."
    )
    model_versions: Annotated[dict[str, Annotated[int, Field(ge=0)]], NoDecode] = Field(
        default_factory=dict,
        description=(
            'Pin a version per model name, as JSON {"m4-hourly": 1} or m4-hourly=1,sst2-bilstm=2; '
            "default: highest version folder."
        ),
    )
    default_models: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=lambda: dict(BUILTIN_DEFAULT_MODELS),
        description=(
            "Which model a /v1 request without a model field gets, per task, as JSON "
            '{"sentiment": "sst2-distilled"} or sentiment=sst2-distilled,forecast=m4-hourly. A task not '
            "named here gets its first model by name. The built-in choice is skipped when the repository "
            "lacks that model; a model named here explicitly must exist (requests get 503 naming it)."
        ),
    )
    version_policy: str = Field(
        default="default",
        description=(
            "Which version folders of each model to load, as Triton's version_policy: default (only the "
            "version unversioned requests get), latest, latest:N, all, or specific:1,3."
        ),
    )
    model_version_policies: dict[str, str] = Field(
        default_factory=dict,
        description='Per-model version policy, e.g. {"m4-hourly": "latest:2"}; others use version_policy.',
    )
    max_tensor_rows_per_request: int = Field(
        default=256,
        gt=0,
        description="Most rows (first-axis length) in one V2 request to a generic tensor model.",
    )
    unload_drain_seconds: float = Field(
        default=30.0,
        gt=0,
        description="How long a model unload waits for in-flight requests before freeing the session.",
    )
    host: str = Field(default="127.0.0.1", description="Interface uvicorn binds to.")
    port: int = Field(default=8000, ge=0, le=65535, description="TCP port uvicorn listens on.")
    access_log: bool = Field(
        default=False,
        description=(
            "uvicorn's one log line per request. Off by default: /metrics already counts every request by "
            "route and status, and at full load the line cost ~5% throughput and ~15 ms of p99 (benchmarked)."
        ),
    )
    direct_lane: bool = Field(
        default=True,
        description=(
            "Answer inference requests that every middleware would pass through untouched straight from "
            "the HTTP protocol, past the ASGI middleware stack: same answers, metrics and limits, about 6% "
            "less CPU per forecast (docs/performance.md, round 6). Off while access_log or opentelemetry "
            "is on, since both watch the full stack."
        ),
    )
    native_lane: bool = Field(
        default=True,
        description=(
            "With the direct lane on, answer a forecast request it takes (/v1/forecast, V2 infer of a "
            "forecast model) from the protocol's callbacks, without an ASGI task: same answers, errors, "
            "metrics and limits; whatever is not a plain success known before the rows are queued takes "
            "the direct lane as before (docs/performance.md, round 7)."
        ),
    )
    log_level: Literal["critical", "error", "warning", "info", "debug"] = Field(
        default="info", description="Log level for the service and uvicorn."
    )
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description=(
            'API keys, comma-separated (k1,k2) or a JSON list (["k1", "k2"]); when set, /v1 routes '
            "need one in Authorization: Bearer <key> or X-API-Key: <key> (401 otherwise); "
            "empty = no authentication."
        ),
    )
    auth_protect_health_and_metrics: bool = Field(
        default=False, description="With api_keys set, also require a key on /healthz, /readyz and /metrics."
    )
    cors_allow_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description=(
            "Origins allowed by CORS, comma-separated (https://a.example,https://b.example) or a JSON list; "
            "empty = no CORS."
        ),
    )
    graceful_shutdown_seconds: int = Field(
        default=30,
        gt=0,
        description="On SIGTERM, how long in-flight requests may take to finish before they are cancelled.",
    )
    drain_seconds: float = Field(
        default=0.0,
        ge=0,
        description=(
            "On SIGTERM, first answer /readyz with 503 and keep serving this long, so a load balancer that "
            "health-checks /readyz stops routing here before the listener closes; 0 = shut down at once "
            "(Kubernetes: the preStop pause does this)."
        ),
    )
    drift_enabled: bool = Field(
        default=True,
        description="Score input/output drift against each version's profile.json (docs/drift.md).",
    )
    drift_window_rows: int = Field(
        default=5_000, gt=0, description="Most recent rows per model (and worker) in the drift window."
    )
    drift_window_seconds: float = Field(
        default=900.0, gt=0, description="Rows older than this leave the drift window."
    )
    drift_refresh_seconds: float = Field(
        default=5.0, gt=0, description="Seconds between drift score and gauge updates (off the request path)."
    )
    drift_rows_per_refresh: int = Field(
        default=1_000,
        gt=0,
        description=(
            "Most rows per model (and worker) queued for drift scoring between two refreshes; more are "
            "skipped, so scoring costs the same at any load (a sample is enough to score a distribution)."
        ),
    )

    # NoDecode above: the environment's raw string reaches these, so both forms can be accepted.
    @field_validator("api_keys", "cors_allow_origins", mode="before")
    @classmethod
    def _list_from_text(cls, value: object) -> object:
        return parse_list(value) if isinstance(value, str) else value

    @field_validator("model_versions", "default_models", mode="before")
    @classmethod
    def _mapping_from_text(cls, value: object) -> object:
        return parse_mapping(value) if isinstance(value, str) else value

    @field_validator("version_policy")
    @classmethod
    def _known_policy(cls, policy: str) -> str:
        VersionPolicy.parse(policy)  # raises ValueError naming the accepted forms
        return policy

    @field_validator("model_version_policies")
    @classmethod
    def _known_policies(cls, policies: dict[str, str]) -> dict[str, str]:
        for name, policy in policies.items():
            try:
                VersionPolicy.parse(policy)
            except ValueError as exc:
                raise ValueError(f"{name}: {exc}") from exc
        return policies

    @field_validator("api_keys")
    @classmethod
    def _keys_not_blank(cls, keys: list[SecretStr]) -> list[SecretStr]:
        # A blank key would let an empty "Authorization: Bearer " through; never echo the value.
        for index, key in enumerate(keys):
            value = key.get_secret_value()
            if not value or value != value.strip():
                raise ValueError(f"api_keys[{index}] is empty or has surrounding whitespace")
        return keys
