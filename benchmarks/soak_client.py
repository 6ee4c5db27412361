"""The load side of ``python -m benchmarks.soak``: request bodies, a small HTTP/1.1 client, recording.

Split from ``benchmarks/soak.py`` so the orchestration there (start the service, sample RSS, decide
pass/fail) reads apart from the mechanics of generating load. The client is a minimal HTTP/1.1
keep-alive client on asyncio streams (stdlib only), so it needs nothing beyond the runtime and costs
little CPU next to the service on a small machine. Each closed-loop connection records every answer in
a ``Recorder``, by time window, and ``window_stats`` turns one window into its p50/p99 summary.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from benchmarks import payloads

REPO_ROOT = Path(__file__).resolve().parent.parent
SST_DEV = REPO_ROOT / "training/data/sst2/glue_dev.tsv"
FORECAST_PATH, SENTIMENT_PATH = "/v1/forecast", "/v1/sentiment"
KINDS = ("forecast", "sentiment")


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


# ------------------------------------------------------------- per-window statistics


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
