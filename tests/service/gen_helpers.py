"""Shared helpers for the generation and classification tests: a repository holding only the model under
test, a real server process on loopback, and SSE parsing."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from svc_helpers import MODELS, REPO

GEN_MODEL = "shakespeare-char"
CLASSIFY_MODEL = "mnist-rows"

# Prompts of characters every Shakespeare vocabulary has (letters, space, newline, basic punctuation).
PROMPTS = [
    "ROMEO:\n", "JULIET:\nO Romeo", "First Citizen:\nBefore we proceed", "KING RICHARD III:\nNow is the",
    "To be, or not to be", "What light through yonder", "MENENIUS:\nI tell you", "Good morrow, ",
    "HAMLET:\n", "The quality of mercy", "All the world", "Friends, Romans", "Once more unto the",
    "Now is the winter of our discontent", "A", "\n", "Why, ", "Here", "Thou art", "My lord, ",
]  # fmt: skip


def many_prompts(count: int) -> list[str]:
    """``count`` distinct prompts of varied lengths (so prefill chunks of several sizes mix)."""
    return [PROMPTS[i % len(PROMPTS)] + ("" if i < len(PROMPTS) else f" {'ab'[i % 2] * (i % 7)}")
            for i in range(count)]  # fmt: skip


def model_repository(tmp: Path, *names: str) -> Path:
    """A repository with only these committed models (each start then loads just what a test needs)."""
    repo = tmp / "models"
    for name in names:
        shutil.copytree(MODELS / name, repo / name)
    return repo


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_server(repository: Path, log_path: Path, **settings: str) -> Iterator[str]:
    """``python -m service`` as deployed (one worker) on a free loopback port; yields its base URL."""
    port = free_port()
    env = {**os.environ, "SEQSERVE_PORT": str(port), "SEQSERVE_HOST": "127.0.0.1", "SEQSERVE_WORKERS": "1",
           "SEQSERVE_MODEL_REPOSITORY": str(repository)}  # fmt: skip
    env.update({f"SEQSERVE_{key.upper()}": value for key, value in settings.items()})
    base = f"http://127.0.0.1:{port}"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "service"], cwd=REPO, env=env, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log_path.read_text()[-3000:]


def sse_events(raw: str) -> list[str]:
    """The data of each event of a text/event-stream body, in order."""
    events = []
    for block in raw.split("\n\n"):
        if not block.strip():
            continue
        lines = block.split("\n")
        assert all(line.startswith("data: ") for line in lines), block
        events.append("\n".join(line[len("data: ") :] for line in lines))
    return events


def sse_json(raw: str) -> list[dict[str, Any]]:
    return [json.loads(event) for event in sse_events(raw)]


def metric_value(metrics_text: str, name: str, labels: str = "") -> float:
    """One sample of /metrics text, e.g. metric_value(text, "seqserve_generated_tokens_total", labels)."""
    wanted = f"{name}{{{labels}}}" if labels else name
    for line in metrics_text.splitlines():
        if line.startswith(wanted + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{wanted} not in /metrics")
