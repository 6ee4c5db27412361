"""wrk as the load generator: closed loop, N connections, JSON bodies from a file, its own CPU measured."""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

LUA_SCRIPT = Path(__file__).resolve().parent / "post.lua"
# Open Inference Protocol binary requests (benchmarks/payloads.py write_v2_records).
V2_LUA_SCRIPT = Path(__file__).resolve().parent / "post_v2.lua"
_MARK = "WRK_JSON "


class LoadGenError(RuntimeError):
    pass


def wrk_binary() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise LoadGenError("wrk is not installed: apt-get install -y wrk (Debian/Ubuntu)")
    return found


def wrk_version() -> str:
    done = subprocess.run([wrk_binary(), "-v"], capture_output=True, text=True, check=False)
    text = (done.stdout or done.stderr).strip()
    return text.splitlines()[0].split(" Copyright")[0] if text else "?"


def _children_cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_wrk(
    base_url: str,
    path: str,
    bodies_file: Path,
    connections: int,
    duration_s: int,
    rows_per_request: int,
    server_cpu_seconds: Callable[[], float] | None = None,
    max_threads: int = 2,
    timeout_s: int = 10,
    script: Path = LUA_SCRIPT,
) -> dict[str, Any]:
    """One closed-loop load phase; returns throughput, latency percentiles, errors and CPU use.

    wrk's CPU comes from getrusage(RUSAGE_CHILDREN) around it: it is the only child that
    terminates meanwhile (the servers stay up), so the delta is wrk's user + system time.
    """
    threads = max(1, min(max_threads, connections))
    cmd = [
        wrk_binary(),
        "-t",
        str(threads),
        "-c",
        str(connections),
        "-d",
        f"{duration_s}s",
        "--timeout",
        f"{timeout_s}s",
        "--latency",
        "-s",
        str(script),
        base_url,
        "--",
        path,
        str(bodies_file),
    ]
    server_before = server_cpu_seconds() if server_cpu_seconds else 0.0
    cpu_before, wall_before = _children_cpu_seconds(), time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=duration_s + 60)
    wall = time.perf_counter() - wall_before
    wrk_cpu = _children_cpu_seconds() - cpu_before
    server_cpu = (server_cpu_seconds() - server_before) if server_cpu_seconds else None
    lines = [line for line in done.stdout.splitlines() if line.startswith(_MARK)]
    if done.returncode != 0 or not lines:
        raise LoadGenError(
            f"wrk failed (exit {done.returncode}): {done.stderr.strip() or done.stdout[-2000:]}"
        )
    raw = json.loads(lines[-1][len(_MARK) :])
    seconds = raw["duration_us"] / 1e6
    req_per_s = raw["requests"] / seconds
    lat = {k: v / 1000.0 for k, v in raw["latency_us"].items()}
    errors = raw["errors"]
    return {
        "path": path,
        "connections": connections,
        "wrk_threads": threads,
        "duration_s": seconds,
        "requests": raw["requests"],
        "rows_per_request": rows_per_request,
        "requests_per_s": req_per_s,
        "rows_per_s": req_per_s * rows_per_request,
        "latency_ms": lat,
        "errors": errors,
        "error_count": sum(errors.values()),
        "bytes_read": raw["bytes"],
        "wrk_cpu_seconds": wrk_cpu,
        "wrk_cpu_cores": wrk_cpu / wall,
        "server_cpu_cores": None if server_cpu is None else server_cpu / wall,
        "server_cpu_seconds": server_cpu,
        "command": " ".join(cmd),
    }
