"""Which model a /v1 request without a ``model`` field gets (SEQSERVE_DEFAULT_MODELS)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from svc_helpers import copy_model, make_settings, read_m4_series

from service.app import create_app
from service.config import BUILTIN_DEFAULT_MODELS

BODY = {"series": [{"values": read_m4_series(1)[0][1][-336:]}]}
REVIEW = {"texts": ["a gorgeous, witty, seductive movie."]}


def _repo(tmp_path: Path, *names: str) -> Path:
    for name in names:
        repo = copy_model(tmp_path, name=name)
    return repo


def _served(settings_repo: Path, **overrides: object) -> tuple[int, dict[str, object]]:
    with TestClient(create_app(make_settings(settings_repo, **overrides))) as client:
        response = client.post("/v1/forecast", json=BODY)
        return response.status_code, response.json()


def test_the_built_in_choice_serves_when_the_repository_has_it(tmp_path: Path) -> None:
    repo = _repo(tmp_path, "m4-hourly", "a-forecaster")
    status, body = _served(repo)
    # "a-forecaster" comes first by name; the built-in choice wins over that order.
    assert status == 200 and body["model"]["name"] == BUILTIN_DEFAULT_MODELS["forecast"] == "m4-hourly"


def test_without_the_built_in_choice_the_first_by_name_serves(tmp_path: Path) -> None:
    status, body = _served(_repo(tmp_path, "zz-forecaster", "aa-forecaster"))
    assert status == 200 and body["model"]["name"] == "aa-forecaster"


def test_an_operator_choice_overrides_both(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = _repo(tmp_path, "m4-hourly", "aa-forecaster", "zz-forecaster")
    monkeypatch.setenv("SEQSERVE_DEFAULT_MODELS", "forecast=zz-forecaster")
    status, body = _served(repo)
    assert status == 200 and body["model"]["name"] == "zz-forecaster"
    # A request that names a model still gets exactly that one.
    with TestClient(create_app(make_settings(repo))) as client:
        named = client.post("/v1/forecast", json={**BODY, "model": "aa-forecaster"}).json()
        assert named["model"]["name"] == "aa-forecaster"


def test_an_operator_choice_the_repository_lacks_is_a_503_naming_it(tmp_path: Path) -> None:
    status, body = _served(_repo(tmp_path, "m4-hourly"), default_models={"forecast": "m4-daily"})
    assert status == 503
    assert "m4-daily" in str(body) and "SEQSERVE_DEFAULT_MODELS" in str(body)


def test_malformed_choices_are_refused_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQSERVE_DEFAULT_MODELS", "forecast")
    with pytest.raises(ValidationError, match="name=value"):
        make_settings()


def test_the_committed_repository_serves_the_distilled_sentiment_model_by_default() -> None:
    with TestClient(create_app(make_settings())) as client:
        body = client.post("/v1/sentiment", json=REVIEW).json()
        assert body["model"]["name"] == BUILTIN_DEFAULT_MODELS["sentiment"] == "sst2-distilled"
        assert client.post("/v1/forecast", json=BODY).json()["model"]["name"] == "m4-hourly"
