import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from service.app import create_app
from service.config import Settings
from service.runtime.session import batch_lanes


def test_defaults() -> None:
    settings = Settings()
    assert settings.model_repository == Path("models")
    assert settings.providers == "auto"
    assert settings.max_body_bytes == 1024 * 1024
    assert settings.max_series_per_request == 256
    assert settings.max_series_length == 10_000
    assert settings.max_batch_size == 64
    assert settings.request_timeout_seconds == 10
    assert settings.model_versions == {}


def test_reads_prefixed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQSERVE_MAX_BODY_BYTES", "2048")
    monkeypatch.setenv("SEQSERVE_PROVIDERS", "cpu")
    monkeypatch.setenv("SEQSERVE_MODEL_VERSIONS", '{"m4-hourly": 1}')
    settings = Settings()
    assert settings.max_body_bytes == 2048
    assert settings.providers == "cpu"
    assert settings.model_versions == {"m4-hourly": 1}


@pytest.mark.parametrize(
    "field, value",
    [
        ("max_body_bytes", 0),
        ("max_series_per_request", -1),
        ("max_batch_size", 0),
        ("request_timeout_seconds", 0),
        ("ort_intra_op_threads", -1),
        ("providers", "tpu"),
        ("port", 70000),
    ],
)
def test_rejects_out_of_range(field: str, value: object) -> None:
    with pytest.raises(ValidationError):
        Settings(**{field: value})


def test_rejects_unknown_setting() -> None:
    with pytest.raises(ValidationError):
        Settings(max_body_size=1)  # type: ignore[call-arg]


def test_fastapi_native_opentelemetry_follows_its_setting() -> None:
    # Off by default: FastAPI then skips its per-request checks of the global OpenTelemetry providers.
    off = create_app(Settings(opentelemetry=False))
    on = create_app(Settings(opentelemetry=True))
    assert off._native_telemetry.enabled() is False
    assert [off._telemetry[k] for k in ("tracing", "metrics", "logs")] == [False, False, False]
    assert [on._telemetry[k] for k in ("tracing", "metrics", "logs")] == [True, True, True]


def test_batch_lanes_default_to_the_cores_the_ort_threads_leave_per_worker() -> None:
    cores = len(os.sched_getaffinity(0))
    assert batch_lanes(Settings(workers=1, ort_intra_op_threads=1)) == cores
    assert batch_lanes(Settings(workers=cores, ort_intra_op_threads=1)) == 1
    # Default ORT threads take the worker's whole share of the cores: one lane, as before lanes existed.
    assert batch_lanes(Settings(workers=1)) == 1
    assert batch_lanes(Settings(workers=1, batch_lanes=3)) == 3
