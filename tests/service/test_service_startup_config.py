"""A misconfigured start: one clear line, exit status 2, no traceback, no key printed.

Runs the real launcher (`python -m service`) as a subprocess, as a person would, with a clean environment
so that SEQSERVE_* variables of the caller do not leak in.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from service.config import Settings

REPO = Path(__file__).resolve().parents[2]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("SEQSERVE_")}
    env.update(extra)
    return env


def _start(**extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service"], cwd=REPO, env=_env(**extra), capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip


@pytest.mark.parametrize(
    "variable, value, expected",
    [
        ("SEQSERVE_PORT", "abc", "expected an integer >= 0 and <= 65535"),
        ("SEQSERVE_PORT", "70000", "expected an integer >= 0 and <= 65535"),
        ("SEQSERVE_PROVIDERS", "tpu", "expected one of auto, cpu, cuda"),
        ("SEQSERVE_BATCHING_ENABLED", "maybe", "expected true or false"),
        ("SEQSERVE_MODEL_VERSIONS", "{bad", "name=version pairs"),
        ("SEQSERVE_MODEL_VERSIONS", "m4-hourly=one", "name=version pairs"),
        ("SEQSERVE_CORS_ALLOW_ORIGINS", "https://a.example,,https://b.example", "comma-separated origins"),
    ],
)
def test_bad_value_prints_one_line_and_exits_2(variable: str, value: str, expected: str) -> None:
    result = _start(**{variable: value})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"seqserve: configuration error: {variable}=")
    assert expected in lines[0]
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_unknown_variable_is_named_with_a_suggestion() -> None:
    result = _start(SEQSERVE_MAX_BATCH_SIZ="8")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "seqserve: configuration error: SEQSERVE_MAX_BATCH_SIZ is not a seqserve setting; "
        "did you mean SEQSERVE_MAX_BATCH_SIZE?"
    )


def test_bad_api_keys_never_print_the_keys() -> None:
    result = _start(SEQSERVE_API_KEYS="supersecret1,, supersecret2")
    assert result.returncode == 2
    assert "SEQSERVE_API_KEYS=<hidden>" in result.stderr
    assert "item 1 of the comma-separated list is empty" in result.stderr
    assert "supersecret" not in result.stderr + result.stdout


@pytest.mark.parametrize("raw", ["key1,key2", "key1, key2", '["key1", "key2"]', ' ["key1","key2"] '])
def test_api_keys_accept_comma_separated_and_json(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("SEQSERVE_API_KEYS", raw)
    keys = [key.get_secret_value() for key in Settings().api_keys]
    assert keys == ["key1", "key2"]


def test_list_and_mapping_settings_accept_plain_forms(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQSERVE_CORS_ALLOW_ORIGINS", "https://a.example,https://b.example")
    monkeypatch.setenv("SEQSERVE_MODEL_VERSIONS", "m4-hourly=1,sst2-bilstm=2")
    settings = Settings()
    assert settings.cors_allow_origins == ["https://a.example", "https://b.example"]
    assert settings.model_versions == {"m4-hourly": 1, "sst2-bilstm": 2}


def test_empty_list_setting_is_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQSERVE_API_KEYS", "")
    assert Settings().api_keys == []


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_launcher_prints_the_urls_once_ready() -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "service"], cwd=REPO, stderr=subprocess.PIPE, text=True,
        env=_env(SEQSERVE_PORT=str(port), SEQSERVE_WORKERS="1", SEQSERVE_PROVIDERS="cpu"),
    )  # fmt: skip
    seen: list[str] = []
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            seen.append(line)
            if f"metrics     http://127.0.0.1:{port}/metrics" in line:
                break
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    text = "".join(seen)
    assert re.search(
        r"seqserve is (ready|up, but not every model is ready \(GET /readyz says why\)); open:", text
    )
    assert f"playground  http://127.0.0.1:{port}/\n" in text
    assert f"API docs    http://127.0.0.1:{port}/docs\n" in text
    # The banner comes after uvicorn's start-up is complete, never before.
    assert text.index("Application startup complete") < text.index("seqserve is ")
