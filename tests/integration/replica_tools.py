"""Start, wait for and stop real ``python -m service`` replicas on loopback (a uniquely named module)."""

from __future__ import annotations

import csv
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[2]
TRAIN_CSV = REPO / "training" / "data" / "m4" / "Hourly-train.csv"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def forecast_body(series: int) -> dict[str, Any]:
    """Real M4 hourly series (the model needs at least 168 values each)."""
    rows: list[dict[str, Any]] = []
    with TRAIN_CSV.open(newline="") as handle:
        reader = csv.reader(handle)
        next(reader)
        for row in reader:
            rows.append({"id": row[0], "values": [float(x) for x in row[1:] if x.strip()]})
            if len(rows) == series:
                break
    return {"series": rows}


def forecast_only_repository(tmp: Path) -> Path:
    """The committed forecast model alone: replicas start faster without the sentiment model."""
    repo = tmp / "models"
    repo.mkdir(exist_ok=True)
    (repo / "m4-hourly").symlink_to(REPO / "models" / "m4-hourly", target_is_directory=True)
    return repo


@dataclass
class Replica:
    port: int
    proc: subprocess.Popen[bytes]
    log: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"replica on {self.port} exited: {self.tail()}"
            try:
                if httpx.get(f"{self.base}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"replica on {self.port} never became ready: {self.tail()}")

    def stop(self, timeout: float = 60.0) -> int:
        self.proc.terminate()
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


def start_replica(
    tmp: Path, models: Path, port: int | None = None, extra_env: dict[str, str] | None = None
) -> Replica:
    port = port if port is not None else free_port()
    env = {
        **os.environ,
        "SEQSERVE_HOST": "127.0.0.1",
        "SEQSERVE_PORT": str(port),
        "SEQSERVE_WORKERS": "1",
        "SEQSERVE_PROVIDERS": "cpu",
        "SEQSERVE_MODEL_REPOSITORY": str(models),
        # One ORT thread: three replicas and the load share this machine's cores.
        "SEQSERVE_ORT_INTRA_OP_THREADS": "1",
        # Speed is not under test: a slow CI machine must not turn queued requests into 504s.
        "SEQSERVE_REQUEST_TIMEOUT_SECONDS": "120",
        **(extra_env or {}),
    }
    log = tmp / f"replica-{port}-{time.monotonic_ns()}.log"
    with log.open("wb") as handle:
        proc = subprocess.Popen(
            [sys.executable, "-m", "service"], cwd=REPO, env=env, stdout=handle, stderr=subprocess.STDOUT
        )
    return Replica(port, proc, log, env)
