"""Peak (VmHWM) and current RSS of each service worker: after start-up, then after each traffic phase.

``python -m benchmarks.worker_memory [--connections 64] [--rounds 4]`` starts ``python -m service``
(2 workers, the committed models, SEQSERVE_* from the environment otherwise), waits for /readyz, sends the
bodies ``bin/bench`` sends (real M4 series and SST-2 reviews) from a pool of Python threads, one phase
after the other: forecast 1 and 32 series per request, the ensemble likewise, sentiment. No wrk, so it
is light enough for a shared machine; it measures memory, not speed. docs/memory.md has its results.
"""

from __future__ import annotations

import argparse
import os
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchmarks import payloads
from benchmarks.server import Server, free_port

REPO_ROOT = Path(__file__).resolve().parent.parent


def _post(url: str, body: str) -> int:
    request = urllib.request.Request(url, data=body.encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return int(response.status)


def _report(server: Server, phase: str) -> None:
    workers = [m for m in server.memory() if m["role"] == "worker"]
    cells = "  ".join(f"peak {m['peak_rss_mb']:6.1f} now {m['rss_mb']:6.1f}" for m in workers)
    print(f"{phase:22s} {cells}  (MB per worker)", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--connections", type=int, default=64, help="requests in flight at once")
    p.add_argument("--rounds", type=int, default=4, help="times each phase sends its bodies")
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()
    port = free_port()
    env = {
        **os.environ,
        "SEQSERVE_MODEL_REPOSITORY": os.environ.get("SEQSERVE_MODEL_REPOSITORY", str(REPO_ROOT / "models")),
        "SEQSERVE_HOST": "127.0.0.1",
        "SEQSERVE_PORT": str(port),
        "SEQSERVE_LOG_LEVEL": "warning",
        "SEQSERVE_WORKERS": str(args.workers),
    }
    ensemble = "m4-hourly-ensemble"
    phases = [
        ("forecast 1/req", "/v1/forecast", payloads.forecast_bodies(336, 1, 64)),
        ("forecast 32/req", "/v1/forecast", payloads.forecast_bodies(336, 32, 16)),
        ("ensemble 1/req", "/v1/forecast", payloads.forecast_bodies(336, 1, 64, model=ensemble)),
        ("ensemble 32/req", "/v1/forecast", payloads.forecast_bodies(336, 32, 16, model=ensemble)),
        ("sentiment 1/req", "/v1/sentiment", payloads.sentiment_bodies(64)),
    ]
    log = Path(os.environ.get("TMPDIR", "/tmp")) / f"worker_memory_{port}.log"
    server = Server("service", [sys.executable, "-m", "service"], env, port, log)
    server.start()
    try:
        _report(server, "ready")
        with ThreadPoolExecutor(args.connections) as pool:
            for phase, path, bodies in phases:
                urls = [server.base_url + path] * (len(bodies) * args.rounds)
                codes = set(pool.map(_post, urls, bodies * args.rounds))
                if codes != {200}:
                    raise SystemExit(f"{phase}: answers {sorted(codes)}; see {log}")
                _report(server, phase)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
