"""``python -m benchmarks.soak``: a bounded soak of the service under mixed forecast and sentiment load.

Starts ``python -m service`` on a free loopback port (``SEQSERVE_WORKERS=2`` unless ``--workers``), then
keeps a fixed number of keep-alive connections busy for ``--duration-seconds`` (closed loop; warm-up
included): some POST ``/v1/forecast`` (1-8 real M4 Hourly series of 168-600 values per request), the
others POST ``/v1/sentiment`` (1-16 real SST-2 dev sentences). Every request is timed and its status
kept, so the report has p50/p99 per time window. RSS of every worker is read at the end of the warm-up,
at every window boundary and at the end.

Fails (exit 1) when any request failed (non-200, malformed answer, connection error or timeout) or any
worker's RSS grew by ``--max-rss-growth-pct`` (10%) or more after the warm-up, or a worker was replaced.
Exit 2: the service did not start. Writes ``benchmarks/results/soak-<UTC timestamp>.json``.

The client is a minimal HTTP/1.1 client on asyncio streams (stdlib only), so it needs nothing beyond the
runtime and costs little CPU next to the service on a small machine.

The load generation and its client live in ``benchmarks/soak_client.py``, the report (checks, table)
in ``benchmarks/soak_report.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import math
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.cli import _commit, service_env, settings_fields
from benchmarks.server import Server, ServerError, free_port
from benchmarks.soak_client import REPO_ROOT, SST_DEV, Body, Recorder, build_bodies, connection_loop
from benchmarks.soak_report import build_result, print_table

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--duration-seconds", type=int, default=600, help="load time in seconds, warm-up included (600)"
    )
    p.add_argument(
        "--warmup-seconds", type=int, default=30, help="first part of the load; RSS baseline at its end (30)"
    )
    p.add_argument("--window-seconds", type=int, default=30, help="report p50/p99 per window (30)")
    p.add_argument("--workers", type=int, default=2, help="SEQSERVE_WORKERS (default 2)")
    p.add_argument("--forecast-connections", type=int, default=8, help="connections sending forecasts (8)")
    p.add_argument("--sentiment-connections", type=int, default=8, help="connections sending sentiment (8)")
    p.add_argument("--min-length", type=int, default=168, help="shortest forecast series (168)")
    p.add_argument("--max-length", type=int, default=600, help="longest forecast series (600)")
    p.add_argument("--max-series", type=int, default=8, help="most series per forecast request (8)")
    p.add_argument("--max-texts", type=int, default=16, help="most texts per sentiment request (16)")
    p.add_argument("--bodies", type=int, default=256, help="distinct request bodies per route (256)")
    p.add_argument("--request-timeout", type=float, default=30.0, help="client timeout per request, s (30)")
    p.add_argument("--max-rss-growth-pct", type=float, default=10.0, help="fail at or above this (10)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--models", type=Path, default=REPO_ROOT / "models", help="model repository")
    p.add_argument(
        "--service-env",
        action="append",
        default=[],
        metavar="SEQSERVE_X=VALUE",
        help="extra service setting, repeatable",
    )
    p.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    args = p.parse_args(argv)
    if args.warmup_seconds < 0 or args.window_seconds <= 0:
        p.error("--warmup-seconds must be >= 0 and --window-seconds > 0")
    if args.duration_seconds <= args.warmup_seconds:
        p.error("--duration-seconds must be longer than --warmup-seconds")
    if args.forecast_connections < 0 or args.sentiment_connections < 0:
        p.error("connection counts must be >= 0")
    if args.forecast_connections + args.sentiment_connections == 0:
        p.error("no connections")
    if not 168 <= args.min_length <= args.max_length:
        p.error("need 168 <= --min-length <= --max-length")
    return args


# --------------------------------------------------------------------------- memory


def worker_rss(server: Server) -> dict[int, float]:
    """Current RSS in MB of every worker process, by PID."""
    return {int(m["pid"]): float(m["rss_mb"]) for m in server.memory() if m["role"] == "worker"}


async def sample_memory(
    server: Server, rec: Recorder, deadline: float, samples: list[dict[str, Any]]
) -> dict[int, float]:
    """RSS at the end of the warm-up (returned) and at every window boundary until the deadline."""
    await asyncio.sleep(max(0.0, rec.t0 + rec.warmup_s - time.monotonic()))
    baseline = worker_rss(server)
    samples.append({"after": "warm-up", "t_s": round(time.monotonic() - rec.t0, 1), "rss_mb": baseline})
    k = 1
    while True:
        at = rec.t0 + rec.warmup_s + k * rec.window_s
        if at >= deadline:
            return baseline
        await asyncio.sleep(max(0.0, at - time.monotonic()))
        rss = worker_rss(server)
        samples.append({"after": f"#{k}", "t_s": round(time.monotonic() - rec.t0, 1), "rss_mb": rss})
        k += 1


async def run_load(
    args: argparse.Namespace, server: Server, bodies: dict[str, list[Body]]
) -> tuple[Recorder, dict[int, float], list[dict[str, Any]]]:
    t0 = time.monotonic()
    deadline = t0 + args.duration_seconds
    n_windows = math.ceil((args.duration_seconds - args.warmup_seconds) / args.window_seconds)
    rec = Recorder(t0, float(args.warmup_seconds), float(args.window_seconds), n_windows - 1)
    samples: list[dict[str, Any]] = []
    tasks = [
        connection_loop(server.port, bodies[kind], rec, deadline, args.request_timeout, args.seed * 1000 + i)
        for i, kind in enumerate(
            ["forecast"] * args.forecast_connections + ["sentiment"] * args.sentiment_connections
        )
    ]
    memory = asyncio.create_task(sample_memory(server, rec, deadline, samples))
    await asyncio.gather(*tasks)
    baseline = await memory
    return rec, baseline, samples


def _meta(args: argparse.Namespace, env: dict[str, str]) -> dict[str, Any]:
    return {
        "started_utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "cpu_count": os.cpu_count(),
        "loadavg_start": os.getloadavg()[0],
        "python": platform.python_version(),
        "commit": _commit(),
        "argv": sys.argv[1:],
        "duration_s": args.duration_seconds,
        "warmup_s": args.warmup_seconds,
        "window_s": args.window_seconds,
        "connections": {"forecast": args.forecast_connections, "sentiment": args.sentiment_connections},
        "forecast_bodies": (
            f"1-{args.max_series} M4 Hourly series of {args.min_length}-{args.max_length} values"
        ),
        "sentiment_bodies": f"1-{args.max_texts} SST-2 dev sentences ({SST_DEV.relative_to(REPO_ROOT)})",
        "distinct_bodies_per_route": args.bodies,
        "service_env": {k: v for k, v in env.items() if k.startswith("SEQSERVE_")},
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.models = args.models.resolve()
    port = free_port()
    env = service_env(args, port, True, settings_fields())
    env.pop("SEQSERVE_BATCHING_ENABLED", None)  # the service's default, not the benchmark's switch
    meta = _meta(args, env)
    bodies = build_bodies(args, port)
    with tempfile.TemporaryDirectory(prefix="seqserve-soak-") as tmp:
        server = Server("service", [sys.executable, "-m", "service"], env, port, Path(tmp) / "service.log")
        print(f"starting the service ({args.workers} workers) on 127.0.0.1:{port} ...", file=sys.stderr)
        try:
            server.start()
        except ServerError as exc:
            print(exc, file=sys.stderr)
            return 2
        try:
            print(
                f"soak: {args.duration_seconds} s ({args.warmup_seconds} s warm-up), "
                f"{args.forecast_connections} forecast + {args.sentiment_connections} sentiment connections",
                file=sys.stderr,
                flush=True,
            )
            cpu_before = server.cpu_seconds()
            self_before = resource.getrusage(resource.RUSAGE_SELF)
            wall_before = time.monotonic()
            rec, baseline, samples = asyncio.run(run_load(args, server, bodies))
            wall = time.monotonic() - wall_before
            end_rss = worker_rss(server)
            samples.append({"after": "end", "t_s": round(wall, 1), "rss_mb": end_rss})
            self_after = resource.getrusage(resource.RUSAGE_SELF)
            meta["server_cpu_cores"] = (server.cpu_seconds() - cpu_before) / wall
            meta["loadgen_cpu_cores"] = (
                self_after.ru_utime + self_after.ru_stime - self_before.ru_utime - self_before.ru_stime
            ) / wall
            meta["load_wall_s"] = wall
            meta["memory_end"] = server.memory()
            result = build_result(args, meta, rec, baseline, samples, end_rss)
            result["server_log_tail"] = server.log_tail(4000)
        finally:
            server.stop()
    args.results_dir.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = args.results_dir / f"soak-{stamp}.json"
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print_table(result)
    print(
        f"\nservice {meta['server_cpu_cores']:.2f} cores, "
        f"load generator {meta['loadgen_cpu_cores']:.2f} cores"
    )
    print(f"wrote {out}")
    return 0 if result["pass"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
