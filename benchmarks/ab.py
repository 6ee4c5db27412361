"""Interleaved A/B of two source trees of the service on the same bodies: short rounds, A and B alternating.

``python -m benchmarks.ab --a /tmp/base --b . --rounds 3 --duration 3`` starts ``python -m service`` from
each tree in turn (the tree's own ``service`` package comes first on sys.path), loads /v1/forecast at
each concurrency, and prints rows/s, p50/p99 and server CPU per request (core-ms) per round, then the
medians. CPU per request moves least when a shared machine is busy, so it is the number to read first.
The same tree under two configurations: ``--a . --b . --b-env SEQSERVE_WORKERS=1``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks import loadgen, payloads
from benchmarks.cli import _ints
from benchmarks.server import Server, free_port

REPO_ROOT = Path(__file__).resolve().parent.parent


def one_round(
    tree: Path, models: Path, work: Path, args: argparse.Namespace, bodies: Path, side_env: list[str]
) -> list[dict[str, Any]]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEQSERVE_")}
    env |= {"SEQSERVE_MODEL_REPOSITORY": str(models), "SEQSERVE_PORT": str(port),
            "SEQSERVE_HOST": "127.0.0.1",
            "SEQSERVE_WORKERS": str(args.workers), "SEQSERVE_LOG_LEVEL": "warning",
            "PYTHONPATH": str(tree)}  # fmt: skip
    env |= dict(item.split("=", 1) for item in [*args.env, *side_env])
    server = Server("ab", [sys.executable, "-m", "service"], env, port, work / "ab.log")
    out = []
    old_cwd = os.getcwd()
    os.chdir(tree)
    try:
        server.start()
        loadgen.run_wrk(server.base_url, args.path, bodies, 16, 1, 1)
        for c in args.connections:
            threads_before = server.thread_cpu_seconds()
            r = loadgen.run_wrk(server.base_url, args.path, bodies, c, args.duration, 1, server.cpu_seconds)
            loop_us, batch_us = _thread_us_per_request(
                threads_before, server.thread_cpu_seconds(), r["requests"]
            )
            out.append({"connections": c, "rows_per_s": r["rows_per_s"], "p50": r["latency_ms"]["p50"],
                        "p99": r["latency_ms"]["p99"], "errors": r["error_count"],
                        "cpu_ms_per_req": 1000 * r["server_cpu_seconds"] / max(1, r["requests"]),
                        "loop_us_per_req": loop_us, "batch_us_per_req": batch_us,
                        })  # fmt: skip
    finally:
        server.stop()
        os.chdir(old_cwd)
    return out


def _thread_us_per_request(
    before: dict[tuple[int, int], float], after: dict[tuple[int, int], float], requests: int
) -> tuple[float, float]:
    """CPU per request of the workers' event-loop threads, and of each worker's busiest other thread.

    Both are far steadier between rounds than rows/s: the host's slow spells move throughput, but a
    change to the request path shows up as microseconds of one thread's CPU per request.
    """
    loop, others = 0.0, {}
    for (pid, tid), cpu in after.items():
        delta = cpu - before.get((pid, tid), 0.0)
        if tid == pid:
            loop += delta
        else:
            others[pid] = max(others.get(pid, 0.0), delta)
    per = 1e6 / max(1, requests)
    return loop * per, sum(others.values()) * per


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.ab")
    p.add_argument("--a", type=Path, required=True, help="source tree A (baseline)")
    p.add_argument("--b", type=Path, required=True, help="source tree B")
    p.add_argument("--models", type=Path, default=REPO_ROOT / "models")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=int, default=3)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--connections", type=_ints, default=[1, 64])
    p.add_argument("--path", default="/v1/forecast", choices=["/v1/forecast", "/v1/sentiment"])
    p.add_argument("--model", default=None, help="forecast model to ask for (default: the service's default)")
    p.add_argument("--env", action="append", default=[], metavar="K=V", help="extra env for both")
    p.add_argument("--a-env", action="append", default=[], metavar="K=V", help="extra env for A only")
    p.add_argument("--b-env", action="append", default=[], metavar="K=V", help="extra env for B only")
    args = p.parse_args(argv)
    results: dict[str, list[list[dict[str, Any]]]] = {"A": [], "B": []}
    with tempfile.TemporaryDirectory(prefix="seqserve-ab-") as tmp:
        work = Path(tmp)
        made = (payloads.forecast_bodies(336, 1, 64, model=args.model) if args.path == "/v1/forecast"
                else payloads.sentiment_bodies(64))  # fmt: skip
        bodies = payloads.write_lines(work / "bodies.jsonl", made)
        for i in range(args.rounds):
            order = ("A", "B") if i % 2 == 0 else ("B", "A")
            for name in order:
                tree = (args.a if name == "A" else args.b).resolve()
                side_env = args.a_env if name == "A" else args.b_env
                r = one_round(tree, args.models.resolve(), work, args, bodies, side_env)
                results[name].append(r)
                cells = "  ".join(
                    f"c{x['connections']}: {x['rows_per_s']:.0f} rows/s p50 {x['p50']:.2f} p99 {x['p99']:.1f}"
                    f" cpu {x['cpu_ms_per_req']:.3f} ms/req (loop {x['loop_us_per_req']:.0f} us,"
                    f" batch {x['batch_us_per_req']:.0f} us) err {x['errors']}"
                    for x in r
                )
                print(f"round {i + 1} {name} load {os.getloadavg()[0]:.1f}  {cells}", flush=True)
    for ci, c in enumerate(args.connections):
        for key in ("rows_per_s", "p50", "p99", "cpu_ms_per_req", "loop_us_per_req", "batch_us_per_req"):
            a = statistics.median(r[ci][key] for r in results["A"])
            b = statistics.median(r[ci][key] for r in results["B"])
            print(f"median c{c} {key:<15} A {a:9.2f}  B {b:9.2f}  B/A {b / a if a else float('nan'):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
