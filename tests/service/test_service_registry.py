import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from svc_helpers import MODEL_NAME, MODELS, assert_error, copy_model, make_settings

from service.app import create_app
from service.exceptions import InvalidInputError, ModelNotFoundError, ModelUnavailableError
from service.runtime.manifest import sha256_of
from service.runtime.providers import CPU
from service.runtime.registry import ModelRegistry, RepositoryError


def _load(repo: Path, **overrides: Any) -> ModelRegistry:
    registry = ModelRegistry(make_settings(repo, **overrides), [CPU])
    registry.load()
    return registry


def _flip_byte(repo: Path) -> None:
    onnx = repo / MODEL_NAME / "1" / "model.onnx"
    data = bytearray(onnx.read_bytes())
    data[100] ^= 0x01
    onnx.write_bytes(bytes(data))


def test_committed_repository_loads_ready(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("INFO", logger="service.runtime.registry"):
        registry = _load(MODELS)
    record = registry.get(MODEL_NAME)
    assert record.state == "ready" and record.error is None
    assert record.provider == CPU
    assert record.warmup_ms is not None and record.warmup_ms > 0
    assert registry.not_ready() == {}
    assert registry.default_for("forecast") is record
    assert f"name={MODEL_NAME} version=1 sha256={record.model_sha256[:12]}" in caplog.text  # type: ignore[index]


def test_checksum_mismatch_is_failed_not_fatal(tmp_path: Path) -> None:
    repo = copy_model(tmp_path)
    copy_model(tmp_path, name="good")
    _flip_byte(repo)
    registry = _load(repo)
    bad = registry.get(MODEL_NAME)
    assert bad.state == "failed"
    assert bad.error is not None and "sha256 mismatch" in bad.error
    assert bad.task == "forecast"  # the manifest was read, so /v1/models can still describe it
    assert registry.get("good").state == "ready"
    assert set(registry.not_ready()) == {MODEL_NAME}


def test_checksum_mismatch_over_http(tmp_path: Path) -> None:
    repo = copy_model(tmp_path)
    _flip_byte(repo)
    with TestClient(create_app(make_settings(repo))) as client:
        assert_error(client.get("/readyz"), 503, loc=["models", MODEL_NAME], error_type="not_ready")
        info = client.get(f"/v1/models/{MODEL_NAME}").json()
        assert info["state"] == "failed" and "sha256 mismatch" in info["error"]
        listed = client.get("/v1/models").json()["models"]
        assert [m["state"] for m in listed] == ["failed"]
        response = client.post("/v1/forecast", json={"series": [{"values": [1.0] * 200}]})
        assert_error(response, 503, error_type="model_unavailable")


@pytest.mark.parametrize(
    "edit, fragment",
    [
        (lambda m: m["inputs"][0].update(name="x"), "input names"),
        (lambda m: m["inputs"][0].update(datatype="INT64"), "graph type tensor(float), manifest INT64"),
        (lambda m: m["inputs"][0].update(shape=[-1, -1, -1]), "graph rank 2"),
        (lambda m: m["outputs"][0].update(shape=[-1, 24, 7]), "axis 1: graph 48, manifest 24"),
        (lambda m: m["outputs"][0].update(shape=[-1, -1, 7]), "graph fixes it to 48"),
    ],
)
def test_tensor_spec_mismatch_refused(tmp_path: Path, edit: Any, fragment: str) -> None:
    record = _load(copy_model(tmp_path, edit)).get(MODEL_NAME)
    assert record.state == "failed"
    assert record.error is not None and fragment in record.error


@pytest.mark.parametrize(
    "edit, fragment",
    [
        (lambda m: m["parameters"].pop("horizon"), "horizon"),
        (lambda m: m["parameters"].update(quantiles=[0.1, 0.9]), "0.5"),
        (lambda m: m["parameters"].update(quantiles=[0.5, 0.1]), "increasing"),
        (lambda m: m["parameters"].update(min_context_length=400), "min_context_length"),
        (lambda m: m["parameters"].update(horizon=24), "forecast output must be"),
        (lambda m: m.update(task="translation"), "not supported"),
        (lambda m: m.update(version=2), "folder is m4-hourly/1"),
    ],
)
def test_bad_task_parameters_refused(tmp_path: Path, edit: Any, fragment: str) -> None:
    record = _load(copy_model(tmp_path, edit)).get(MODEL_NAME)
    assert record.state == "failed"
    assert record.error is not None and fragment in record.error


def test_highest_version_wins_unless_pinned(tmp_path: Path) -> None:
    repo = copy_model(tmp_path, version="1")
    copy_model(tmp_path, version="3")
    copy_model(tmp_path, version="2")
    assert _load(repo).get(MODEL_NAME).version == 3
    assert _load(repo, model_versions={MODEL_NAME: 2}).get(MODEL_NAME).version == 2
    pinned_missing = _load(repo, model_versions={MODEL_NAME: 9}).get(MODEL_NAME)
    assert pinned_missing.state == "failed" and "pinned version 9" in (pinned_missing.error or "")


def test_version_that_opts_out_of_default_is_served_only_when_pinned(tmp_path: Path) -> None:
    repo = copy_model(tmp_path, version="1")
    copy_model(tmp_path, version="2", edit_manifest=lambda m: m.update(default=False))
    assert _load(repo).get(MODEL_NAME).version == 1
    assert _load(repo, model_versions={MODEL_NAME: 2}).get(MODEL_NAME).version == 2
    copy_model(tmp_path, version="3", edit_manifest=lambda m: m.update(default=True))
    assert _load(repo).get(MODEL_NAME).version == 3


def test_pin_for_absent_model_is_reported(tmp_path: Path) -> None:
    registry = _load(copy_model(tmp_path), model_versions={"ghost": 1})
    assert registry.get("ghost").state == "failed"
    assert "ghost" in registry.not_ready()


def test_model_folder_without_versions_fails(tmp_path: Path) -> None:
    repo = copy_model(tmp_path)
    (repo / "empty-model").mkdir()
    registry = _load(repo)
    assert "no integer version folders" in (registry.get("empty-model").error or "")
    assert registry.get(MODEL_NAME).state == "ready"


def test_empty_and_missing_repository(tmp_path: Path) -> None:
    registry = _load(tmp_path)
    assert registry.not_ready() != {}
    with pytest.raises(RepositoryError):
        _load(tmp_path / "nope")


def test_resolve(tmp_path: Path) -> None:
    registry = _load(copy_model(tmp_path))  # the forecaster alone
    assert registry.resolve(None, "forecast").name == MODEL_NAME
    assert registry.resolve(MODEL_NAME, "forecast").name == MODEL_NAME
    with pytest.raises(InvalidInputError) as info:
        registry.resolve("nope", "forecast")
    assert info.value.details[0].loc == ("model",)
    with pytest.raises(InvalidInputError, match="is a forecast model"):
        registry.resolve(MODEL_NAME, "sentiment")
    with pytest.raises(ModelUnavailableError):
        registry.resolve(None, "sentiment")
    with pytest.raises(ModelNotFoundError):
        registry.get("nope")


def test_reload_swaps_snapshot_atomically(tmp_path: Path) -> None:
    repo = copy_model(tmp_path)
    registry = _load(repo)
    before = registry.snapshot()
    copy_model(tmp_path, name="second")
    registry.load()
    after = registry.snapshot()
    assert list(before.models) == [MODEL_NAME]  # the old snapshot is untouched
    assert list(after.models) == [MODEL_NAME, "second"]


def test_measured_batch_size_hint_applies_on_its_provider_only(tmp_path: Path) -> None:
    def hint(provider: str) -> Any:
        return lambda m: m.update(serving={"preferred_batch_size": 5, "provider": provider, "rows_per_s": {}})

    repo = copy_model(tmp_path, edit_manifest=hint(CPU))
    runner = _load(repo).get(MODEL_NAME).runner
    assert runner is not None and runner.rows_per_run == 5
    off = _load(repo, batch_size_hints=False).get(MODEL_NAME).runner
    assert off is not None and off.rows_per_run is None
    elsewhere = copy_model(tmp_path / "gpu", edit_manifest=hint("CUDAExecutionProvider"))
    gpu_measured = _load(elsewhere).get(MODEL_NAME).runner
    assert gpu_measured is not None and gpu_measured.rows_per_run is None


def test_committed_models_carry_the_hint_they_were_measured_with() -> None:
    registry = _load(MODELS)
    for name in registry.snapshot().models:
        record = registry.get(name)
        assert record.manifest is not None and record.runner is not None
        serving = record.manifest.serving
        if record.task in ("forecast", "sentiment"):
            # Trained here, so profiled here (training/batch_profile.py).
            assert serving.provider == CPU and serving.preferred_batch_size is not None
        # A dropped-in model (task tensor) or a generation graph may carry no hint: then none is used.
        assert record.runner.rows_per_run == serving.preferred_batch_size


def test_unlisted_external_weights_file_is_refused(tmp_path: Path) -> None:
    # ORT reads model.onnx.data beside the graph whether or not the manifest names it; unlisted, its
    # checksum would go unchecked, so the version is refused and the reason names the file.
    repo = copy_model(tmp_path)
    (repo / MODEL_NAME / "1" / "model.onnx.data").write_bytes(b"\0" * 64)
    record = _load(repo).get(MODEL_NAME)
    assert record.state == "failed"
    assert record.error is not None and "model.onnx.data" in record.error and "not listed" in record.error


def test_reload_identity_covers_every_listed_file(tmp_path: Path) -> None:
    repo = copy_model(tmp_path)
    first = _load(repo).get(MODEL_NAME)
    tokenizer_like = repo / MODEL_NAME / "1" / "extra.txt"
    tokenizer_like.write_text("a file beside an unchanged graph\n")
    manifest_path = repo / MODEL_NAME / "1" / "model.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["files"]["extra.txt"] = {
        "sha256": sha256_of(tokenizer_like),
        "bytes": tokenizer_like.stat().st_size,
    }
    manifest_path.write_text(json.dumps(manifest))
    second = _load(repo).get(MODEL_NAME)
    assert second.state == "ready" and second.model_sha256 == first.model_sha256
    assert second.content_sha256 != first.content_sha256 and len(second.content_sha256 or "") == 64
