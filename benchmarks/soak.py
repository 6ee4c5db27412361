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
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import datetime as dt
import json
import math
import os
import platform
import random
import resource
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from benchmarks import payloads
from benchmarks.cli import _commit, service_env, settings_fields
from benchmarks.server import Server, ServerError, free_port

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = Path(__file__).resolve().parent / "results"
SST_DEV = REPO_ROOT / "training/data/sst2/glue_dev.tsv"
FORECAST_PATH, SENTIMENT_PATH = "/v1/forecast", "/v1/sentiment"
KINDS = ("forecast", "sentiment")


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


# --------------------------------------------------------------------------- request bodies


@dataclass(frozen=True)
class Body:
    kind: str
    rows: int  # series or texts: the answer must have as many
    request: bytes  # the whole HTTP request, headers included


def _http_request(path: str, port: int, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def dev_sentences(path: Path = SST_DEV) -> list[str]:
    """Every sentence of the GLUE SST-2 dev TSV (columns sentence, label), stripped."""
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        return [row["sentence"].strip() for row in reader if row["sentence"].strip()]


def build_bodies(args: argparse.Namespace, port: int) -> dict[str, list[Body]]:
    rng = random.Random(args.seed)
    series = [(sid, v) for sid, v in payloads.load_m4_rows() if len(v) >= args.max_length]
    if not series:
        raise SystemExit(f"no M4 series with {args.max_length} values")
    sentences = dev_sentences()
    forecast, sentiment = [], []
    for _ in range(args.bodies):
        n = rng.randint(1, args.max_series)
        chosen = rng.sample(series, min(n, len(series)))
        items = [
            {"id": sid, "values": values[-rng.randint(args.min_length, args.max_length) :]}
            for sid, values in chosen
        ]
        data = json.dumps({"series": items}, separators=(",", ":")).encode()
        forecast.append(Body("forecast", len(items), _http_request(FORECAST_PATH, port, data)))
        texts = rng.sample(sentences, rng.randint(1, args.max_texts))
        data = json.dumps({"texts": texts}, separators=(",", ":")).encode()
        sentiment.append(Body("sentiment", len(texts), _http_request(SENTIMENT_PATH, port, data)))
    return {"forecast": forecast, "sentiment": sentiment}


# --------------------------------------------------------------------------- a small HTTP/1.1 client


class ProtocolError(Exception):
    pass


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """(status, body, keep_alive) of one response; Content-Length or chunked bodies."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise ProtocolError(f"bad status line {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        chunks = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
            if size == 0:
                await _skip_trailers(reader)
                break
            chunks.append(await reader.readexactly(size))
            await reader.readexactly(2)
        body = b"".join(chunks)
    elif "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    else:
        raise ProtocolError("response without Content-Length or chunked encoding")
    keep_alive = headers.get("connection", "").lower() != "close"
    return int(parts[1]), body, keep_alive


async def _skip_trailers(reader: asyncio.StreamReader) -> None:
    while (await reader.readuntil(b"\r\n")) != b"\r\n":
        pass


# --------------------------------------------------------------------------- recording


@dataclass
class Window:
    latencies_ms: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in KINDS})
    requests: int = 0
    errors: int = 0
    status_5xx: int = 0


@dataclass
class Recorder:
    t0: float
    warmup_s: float
    window_s: float
    last_index: int  # answers that arrive after the deadline count in the last window
    warmup: Window = field(default_factory=Window)
    windows: dict[int, Window] = field(default_factory=dict)
    error_kinds: dict[str, int] = field(default_factory=dict)
    status_counts: dict[str, int] = field(default_factory=dict)
    error_samples: list[str] = field(default_factory=list)

    def window_at(self, t: float) -> Window:
        elapsed = t - self.t0
        if elapsed < self.warmup_s:
            return self.warmup
        index = min(int((elapsed - self.warmup_s) // self.window_s), self.last_index)
        return self.windows.setdefault(index, Window())

    def record(self, kind: str, started: float, done: float, status: int | None, error: str | None) -> None:
        w = self.window_at(done)
        w.requests += 1
        if status is not None:
            self.status_counts[str(status)] = self.status_counts.get(str(status), 0) + 1
            if status >= 500:
                w.status_5xx += 1
        if error is None:
            w.latencies_ms[kind].append((done - started) * 1000.0)
            return
        w.errors += 1
        key = f"{kind}: {error.split(':', 1)[0]}"
        self.error_kinds[key] = self.error_kinds.get(key, 0) + 1
        if len(self.error_samples) < 20:
            self.error_samples.append(f"t={done - self.t0:.1f}s {kind}: {error[:300]}")


def _check_answer(kind: str, rows: int, body: bytes) -> str | None:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return "bad_body: not JSON"
    key = "forecasts" if kind == "forecast" else "results"
    answered = data.get(key) if isinstance(data, dict) else None
    if not isinstance(answered, list) or len(answered) != rows:
        return f"bad_body: expected {rows} {key}"
    return None


async def connection_loop(
    port: int, bodies: list[Body], rec: Recorder, deadline: float, timeout_s: float, seed: int
) -> None:
    """One closed-loop connection: send, wait for the whole answer, repeat; reconnect after a failure."""
    rng = random.Random(seed)
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    while time.monotonic() < deadline:
        body = bodies[rng.randrange(len(bodies))]
        started = time.monotonic()
        status: int | None = None
        error: str | None = None
        keep_alive = True
        try:
            async with asyncio.timeout(timeout_s):
                if writer is None:
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                assert reader is not None
                writer.write(body.request)
                await writer.drain()
                status, answer, keep_alive = await _read_response(reader)
            if status != 200:
                error = f"http_{status}: {answer[:200].decode(errors='replace')}"
            else:
                error = _check_answer(body.kind, body.rows, answer)
        except TimeoutError:
            error, keep_alive = f"timeout: no answer within {timeout_s:.0f} s", False
        except (OSError, EOFError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            error, keep_alive = f"connection: {type(exc).__name__} {exc}", False
        except (ProtocolError, ValueError) as exc:
            error, keep_alive = f"protocol: {exc}", False
        rec.record(body.kind, started, time.monotonic(), status, error)
        if not keep_alive and writer is not None:
            writer.close()
            with contextlib.suppress(OSError, asyncio.TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), 1.0)
            reader = writer = None
        if error is not None and status is None:
            await asyncio.sleep(0.1)  # a refused or broken connection: do not spin
    if writer is not None:
        writer.close()
        with contextlib.suppress(OSError, asyncio.TimeoutError):
            await asyncio.wait_for(writer.wait_closed(), 1.0)


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


# --------------------------------------------------------------------------- report


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100.0 * len(ordered)) - 1)]


def window_stats(label: str, start_s: float, end_s: float, w: Window) -> dict[str, Any]:
    every = w.latencies_ms["forecast"] + w.latencies_ms["sentiment"]
    out: dict[str, Any] = {
        "window": label,
        "start_s": round(start_s, 1),
        "end_s": round(end_s, 1),
        "requests": w.requests,
        "requests_per_s": w.requests / (end_s - start_s) if end_s > start_s else None,
        "errors": w.errors,
        "status_5xx": w.status_5xx,
        "p50_ms": percentile(every, 50),
        "p99_ms": percentile(every, 99),
    }
    for kind in KINDS:
        out[kind] = {
            "ok": len(w.latencies_ms[kind]),
            "p50_ms": percentile(w.latencies_ms[kind], 50),
            "p99_ms": percentile(w.latencies_ms[kind], 99),
            "max_ms": max(w.latencies_ms[kind], default=None),
        }
    return out


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def print_table(result: dict[str, Any]) -> None:
    pids = sorted(result["rss"]["start_mb"])
    samples = {s["after"]: s["rss_mb"] for s in result["rss"]["samples"]}
    head = "| window (s) | requests | req/s | errors | 5xx | p50 ms | p99 ms | forecast p99 | sentiment p99 |"
    head += "".join(f" RSS {pid} MB |" for pid in pids)  # at the end of the window
    print(head)
    print("|" + "---|" * (9 + len(pids)))
    for w in result["windows"]:
        rss = samples.get(w["window"], result["rss"]["end_mb"] if w is result["windows"][-1] else {})
        row = (
            f"| {w['window']} {w['start_s']:.0f}-{w['end_s']:.0f} | {w['requests']} | "
            f"{w['requests_per_s']:.1f} | {w['errors']} | {w['status_5xx']} | {_ms(w['p50_ms'])} | "
            f"{_ms(w['p99_ms'])} | {_ms(w['forecast']['p99_ms'])} | {_ms(w['sentiment']['p99_ms'])} |"
        )
        row += "".join(f" {rss[pid]:.1f} |" if pid in rss else " - |" for pid in pids)
        print(row)
    t = result["totals"]
    print()
    print(
        f"requests {t['requests']} ({t['requests_per_s']:.1f}/s), errors {t['errors']}, "
        f"5xx {t['status_5xx']}, statuses {t['status_counts']}"
    )
    if t["error_kinds"]:
        print(f"error kinds: {t['error_kinds']}")
    r = result["rss"]
    for pid in pids:
        end = r["end_mb"].get(pid)
        growth = r["growth_pct"].get(pid)
        print(
            f"worker {pid}: RSS {r['start_mb'][pid]:.1f} MB after warm-up -> "
            f"{'gone' if end is None else f'{end:.1f} MB'} at the end"
            + ("" if growth is None else f" ({growth:+.2f}%)")
        )
    for check in result["checks"]:
        print(f"{'PASS' if check['pass'] else 'FAIL'}  {check['name']}: {check['measured']}")


def build_result(
    args: argparse.Namespace,
    meta: dict[str, Any],
    rec: Recorder,
    baseline: dict[int, float],
    samples: list[dict[str, Any]],
    end_rss: dict[int, float],
) -> dict[str, Any]:
    measured_s = args.duration_seconds - args.warmup_seconds
    windows = []
    if args.warmup_seconds:
        windows.append(window_stats("warm-up", 0.0, float(args.warmup_seconds), rec.warmup))
    n_windows = math.ceil(measured_s / args.window_seconds)
    for i in range(n_windows):
        start = args.warmup_seconds + i * args.window_seconds
        end = min(start + args.window_seconds, args.duration_seconds)
        windows.append(window_stats(f"#{i + 1}", float(start), float(end), rec.windows.get(i, Window())))
    all_windows = [rec.warmup, *rec.windows.values()]
    requests = sum(w.requests for w in all_windows)
    errors = sum(w.errors for w in all_windows)
    status_5xx = sum(w.status_5xx for w in all_windows)
    growth = {
        pid: (end_rss[pid] - start) / start * 100.0 if pid in end_rss and start > 0 else None
        for pid, start in baseline.items()
    }
    known = [g for g in growth.values() if g is not None]
    max_growth = max(known, default=None)
    replaced = sorted(set(end_rss) ^ set(baseline))
    total_start, total_end = sum(baseline.values()), sum(end_rss.values())
    checks: list[dict[str, Any]] = [
        {"name": "errors == 0", "measured": errors, "pass": errors == 0},
        {
            "name": f"RSS growth per worker after warm-up < {args.max_rss_growth_pct:g}%",
            "measured": None if max_growth is None else round(max_growth, 2),
            "pass": max_growth is not None and max_growth < args.max_rss_growth_pct,
        },
        {
            "name": "same worker processes at start and end",
            "measured": replaced or "same",
            "pass": not replaced,
        },
    ]
    return {
        "meta": meta,
        "totals": {
            "requests": requests,
            "requests_per_s": requests / args.duration_seconds,
            "errors": errors,
            "status_5xx": status_5xx,
            "status_counts": dict(sorted(rec.status_counts.items())),
            "error_kinds": rec.error_kinds,
            "error_samples": rec.error_samples,
            "forecast_ok": sum(len(w.latencies_ms["forecast"]) for w in all_windows),
            "sentiment_ok": sum(len(w.latencies_ms["sentiment"]) for w in all_windows),
        },
        "windows": windows,
        "rss": {
            "start_mb": baseline,
            "end_mb": end_rss,
            "growth_pct": growth,
            "max_growth_pct": max_growth,
            "total_start_mb": total_start,
            "total_end_mb": total_end,
            "total_growth_pct": (total_end - total_start) / total_start * 100.0 if total_start else None,
            "samples": samples,
        },
        "checks": checks,
        "pass": all(c["pass"] for c in checks),
    }


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
