"""py-spy on one worker of ``python -m service`` under wrk load, summarised as self time by function.

``python -m benchmarks.profile_worker --out benchmarks/results/profile-<stamp>-forecast-64conns.txt``
starts the service (2 workers by default), loads /v1/forecast with one real 336-value series per
request at 64 connections, records one worker with py-spy for ``--seconds`` and writes the share of
samples whose innermost frame is each function (idle waits included, as in the first profile).
"""

from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks import loadgen, payloads
from benchmarks.server import Server, free_port

REPO_ROOT = Path(__file__).resolve().parent.parent
# --task: the route loaded, what one request carries, and the real bodies sent (as in bin/bench).
TASKS: dict[str, tuple[str, str, Callable[[], list[str]]]] = {
    "forecast": ("/v1/forecast", "one 336-value series", lambda: payloads.forecast_bodies(336, 1, 64)),
    "sentiment": ("/v1/sentiment", "one SST-2 review", lambda: payloads.sentiment_bodies(64)),
}


def summarize(raw: str, top: int) -> tuple[int, list[tuple[float, str]]]:
    """py-spy's collapsed stacks ("a;b;c N") -> total samples, (percent, innermost frame) by share."""
    self_time: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        self_time[stack.split(";")[-1]] += n
    return total, [(100.0 * n / total, frame) for frame, n in self_time.most_common(top)]


# Innermost frames that are a thread waiting (for work, a lock, the socket or a timer), not working.
WAITS = (
    "_worker (concurrent/futures/thread.py",
    "Condition.wait (threading.py",
    "Runner.run (asyncio/runners.py",
    "Connection._recv (multiprocessing/connection.py",
    "_run (service/drift/refresher.py",
    "Event.wait (threading.py",
    "select (selectors.py",
)


def busy_only(raw: str) -> str:
    return "\n".join(
        line for line in raw.splitlines() if not line.rpartition(" ")[0].split(";")[-1].startswith(WAITS)
    )


_LOOP = "Runner.run (asyncio/runners.py"


def loop_inclusive(raw: str, top: int) -> tuple[int, list[tuple[float, str]]]:
    """The event-loop thread's busy samples, and the share of them inside each function (inclusive).

    The loop thread's stacks run through asyncio's ``Runner.run``; one that ends there is the loop
    waiting in epoll. A function counts once per sample however often it recurs in the stack, so the
    shares read as "this much of the loop's work happened inside it".
    """
    inside: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        starts = [i for i, frame in enumerate(frames) if frame.startswith(_LOOP)]
        if not starts or frames[-1].startswith(WAITS):
            continue
        n = int(count)
        total += n
        # Without the line number, so that one function is one row.
        for function in {frame.rpartition(":")[0] or frame for frame in frames[starts[0] + 1 :]}:
            inside[function] += n
    return total, [(100.0 * n / max(1, total), f + ")") for f, n in inside.most_common(top)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.profile_worker")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--models", type=Path, default=REPO_ROOT / "models")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--seconds", type=int, default=8)
    p.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    p.add_argument("--top", type=int, default=40)
    p.add_argument("--note", default="", help="a line about the conditions (e.g. a shared machine)")
    p.add_argument("--task", choices=sorted(TASKS), default="forecast", help="which route to load")
    p.add_argument("--raw", type=Path, help="also keep py-spy's collapsed stacks here")
    args = p.parse_args(argv)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEQSERVE_")}
    env |= {"SEQSERVE_MODEL_REPOSITORY": str(args.models.resolve()), "SEQSERVE_PORT": str(port),
            "SEQSERVE_HOST": "127.0.0.1", "SEQSERVE_WORKERS": str(args.workers),
            "SEQSERVE_LOG_LEVEL": "warning"}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="seqserve-profile-") as tmp:
        work = Path(tmp)
        path, what, make_bodies = TASKS[args.task]
        bodies = payloads.write_lines(work / "single.jsonl", make_bodies())
        server = Server("service", [sys.executable, "-m", "service"], env, port, work / "service.log")
        server.start()
        try:
            loadgen.run_wrk(server.base_url, path, bodies, 16, 2, 1)
            wrk_threads = min(2, args.connections)  # wrk refuses fewer connections than threads
            wrk = subprocess.Popen(
                [loadgen.wrk_binary(), f"-t{wrk_threads}", f"-c{args.connections}", f"-d{args.seconds + 4}s",
                 "-s", str(loadgen.LUA_SCRIPT), server.base_url, "--", path, str(bodies)],
                stdout=subprocess.PIPE, text=True,
            )  # fmt: skip
            time.sleep(2)
            worker = server.workers()[0]
            raw_path = work / "profile.txt"
            subprocess.run(
                [str(Path(sys.executable).parent / "py-spy"), "record", "-r", str(args.rate), "-d",
                 str(args.seconds), "-p", str(worker), "--format", "raw", "-o", str(raw_path)],
                check=True, capture_output=True,
            )  # fmt: skip
            out, _ = wrk.communicate(timeout=60)
            summary = [line for line in out.splitlines() if line.startswith("WRK_JSON ")]
        finally:
            server.stop()
        raw_text = raw_path.read_text()
        if args.raw is not None:
            args.raw.write_text(raw_text)
        total, rows = summarize(raw_text, args.top)
        busy_total, busy_rows = summarize(busy_only(raw_text), args.top)
        loop_total, loop_rows = loop_inclusive(raw_text, args.top)
    reqs = "?"
    if summary:
        import json

        raw = json.loads(summary[-1][len("WRK_JSON ") :])
        reqs = f"{raw['requests'] / (raw['duration_us'] / 1e6):,.0f}"
    lines = [
        f"py-spy record -r {args.rate} -d {args.seconds} on one of {args.workers} workers"
        f" (python -m service) while wrk -t{min(2, args.connections)}"
        f" -c{args.connections} POSTs {what} per request"
        f" to {path} ({reqs} req/s over both workers, whole wrk run).",
        "Self time by function, % of all samples of that worker's threads (idle waits included).",
        *([args.note] if args.note else []),
        f"total samples: {total}",
        *(f"{pct:5.1f}%  {frame}" for pct, frame in rows),
        "",
        f"Busy samples only (innermost frame not a wait: {', '.join(w.split(' (')[0] for w in WAITS)}):",
        f"busy samples: {busy_total} ({100.0 * busy_total / max(1, total):.1f}% of all)",
        *(f"{pct:5.1f}%  {frame}" for pct, frame in busy_rows),
        "",
        "Event-loop thread, busy samples, inclusive (% of them spent inside each function):",
        f"loop-thread busy samples: {loop_total}",
        *(f"{pct:5.1f}%  {frame}" for pct, frame in loop_rows),
    ]
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
