"""Cold start of a replica: seconds from process start to the first ``/readyz`` 200 (model load + warm-up).

Image pull and container start aside, this is what a new pod costs before it takes traffic. The model
repository is the tracked one (``git ls-files models``), copied, so untracked work in progress is not
loaded. Each run is a fresh ``python -m service`` process (page cache warm after the first).

    .venv/bin/python -m benchmarks.cold_start --runs 5 --workers 1 2
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tracked_models(target: Path) -> Path:
    listed = subprocess.run(["git", "ls-files", "-z", "models"], cwd=REPO, capture_output=True, check=True)
    for name in filter(None, listed.stdout.decode().split("\0")):
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, target / name)
    return target / "models"


def measure(models: Path, workers: int) -> float:
    port = _free_port()
    env = {**os.environ, "SEQSERVE_HOST": "127.0.0.1", "SEQSERVE_PORT": str(port),
           "SEQSERVE_MODEL_REPOSITORY": str(models), "SEQSERVE_WORKERS": str(workers),
           "SEQSERVE_PROVIDERS": "cpu", "SEQSERVE_LOG_LEVEL": "warning"}  # fmt: skip
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "service"], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the service exited with {proc.returncode} during start-up")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    return time.monotonic() - started
            except httpx.TransportError:
                pass
            time.sleep(0.02)
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        models = _tracked_models(Path(tmp))
        print("models:", ", ".join(sorted(f"{p.parent.name}/{p.name}" for p in models.glob("*/*"))))
        for workers in args.workers:
            seconds = [measure(models, workers) for _ in range(args.runs)]
            print(f"workers={workers}: median {statistics.median(seconds):.2f} s, "
                  f"min {min(seconds):.2f} s, max {max(seconds):.2f} s "
                  f"({', '.join(f'{s:.2f}' for s in seconds)})")  # fmt: skip


if __name__ == "__main__":
    main()
