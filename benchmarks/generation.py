"""Generation benchmark (``bin/bench --only generate``): continuous batching against two baselines.

The same service, model, HTTP path and requests in every phase; only the scheduler's policy differs
(``SEQSERVE_GENERATION_SCHEDULING``):

* **continuous** at 1, 16 and 64 concurrent streams: streams join and leave at every decode step;
* **sequential** at 64 clients: one stream at a time (the others wait for a slot), the way a server
  without batching serves a stateful model;
* **static** at 64 clients: a batch of waiting streams runs until its longest member finishes, and
  only then may the next batch start.

Each client is a closed loop: it sends a streamed /v1/generate, reads its events as they arrive, and
sends the next request when the last event came. Requests come from a seeded list: varied prompts,
``max_new_tokens`` uniform in [min, max] (varied lengths are what static batching wastes time on) and
seeded sampling. Tokens/s counts tokens received inside the measured window; time to first token is
send -> first event; inter-token latency is the gap between consecutive events of a stream (an event
usually carries one token; a gap covering several is counted once, the conservative reading).
The load generator runs in this process on the same machine: its CPU is taken from the server's.
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

PROMPTS = (
    "ROMEO:\n", "JULIET:\nO Romeo, Romeo", "First Citizen:\nBefore we proceed any further, hear me speak.\n",
    "KING RICHARD III:\nNow is the winter of our discontent\n", "HAMLET:\nTo be, or not to be", "MENENIUS:\n",
    "All the world's a stage,\n", "Friends, Romans, countrymen, lend me your ears;\n", "Good morrow, ",
    "The quality of mercy is not strain'd,\n", "LADY MACBETH:\n", "What light through yonder window breaks?",
)  # fmt: skip


@dataclass(frozen=True)
class Workload:
    model: str
    min_tokens: int
    max_tokens: int
    temperature: float
    seed: int

    def bodies(self, count: int) -> list[bytes]:
        rng = random.Random(self.seed)
        out = []
        for i in range(count):
            body = {
                "model": self.model,
                "prompt": PROMPTS[i % len(PROMPTS)],
                "max_new_tokens": rng.randint(self.min_tokens, self.max_tokens),
                "temperature": self.temperature,
                "seed": self.seed + i,
                "stream": True,
            }
            out.append(orjson.dumps(body))
        return out


@dataclass
class PhaseStats:
    tokens: int = 0  # received inside the window
    completed: int = 0
    ttft: list[float] = field(default_factory=list)
    inter_token: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


async def _one_stream(
    host: str, port: int, body: bytes, stats: PhaseStats, window_start: float, window_end: float
) -> None:
    """One streamed generation; what happens inside [window_start, window_end] is counted."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        head = (f"POST /v1/generate HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()  # fmt: skip
        sent = time.perf_counter()
        writer.write(head + body)
        buffer = b""
        last_event: float | None = None
        seen_tokens = 0
        status_checked = False
        while True:
            data = await reader.read(65536)
            now = time.perf_counter()
            if not data:
                stats.errors.append("connection closed before the last event")
                return
            buffer += data
            if not status_checked:
                if b"\r\n" not in buffer:
                    continue
                if not buffer.startswith(b"HTTP/1.1 200"):
                    stats.errors.append(buffer[:200].decode(errors="replace"))
                    return
                status_checked = True
            while (start := buffer.find(b"data: ")) != -1 and (end := buffer.find(b"\n\n", start)) != -1:
                event = orjson.loads(buffer[start + 6 : end])
                buffer = buffer[end + 2 :]
                if "error" in event:
                    stats.errors.append(str(event["error"])[:200])
                    return
                new = event["tokens"] - seen_tokens
                seen_tokens = event["tokens"]
                inside = window_start <= now <= window_end
                if inside:
                    stats.tokens += new
                    if last_event is None:
                        stats.ttft.append(now - sent)
                    elif new:
                        stats.inter_token.append(now - last_event)
                last_event = now
                if event["finish_reason"] is not None:
                    stats.completed += inside
                    return
            if now > window_end:
                return  # the window closed: hang up (the server cancels the stream)
    finally:
        writer.close()


async def _client(host: str, port: int, bodies: list[bytes], offset: int, step: int,
                  stats: PhaseStats, window_start: float, window_end: float) -> None:  # fmt: skip
    i = offset
    while time.perf_counter() < window_end:
        await _one_stream(host, port, bodies[i % len(bodies)], stats, window_start, window_end)
        i += step


async def _phase(
    host: str, port: int, bodies: list[bytes], clients: int, warmup: float, duration: float
) -> Any:
    stats = PhaseStats()
    start = time.perf_counter()
    window_start, window_end = start + warmup, start + warmup + duration
    await asyncio.gather(
        *(_client(host, port, bodies, i, clients, stats, window_start, window_end) for i in range(clients))
    )
    return stats


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100.0 * len(ordered)))]


def run_phase(
    base_url: str, workload: Workload, clients: int, warmup: float, duration: float
) -> dict[str, Any]:
    host, port = base_url.removeprefix("http://").split(":")
    bodies = workload.bodies(max(256, clients * 8))
    stats: PhaseStats = asyncio.run(_phase(host, int(port), bodies, clients, warmup, duration))
    ms = 1000.0
    summary = {
        "clients": clients,
        "duration_s": duration,
        "tokens": stats.tokens,
        "tokens_per_s": stats.tokens / duration,
        "completed": stats.completed,
        "ttft_p50_ms": _scaled(_percentile(stats.ttft, 50), ms),
        "ttft_p99_ms": _scaled(_percentile(stats.ttft, 99), ms),
        "inter_token_p50_ms": _scaled(_percentile(stats.inter_token, 50), ms),
        "inter_token_p99_ms": _scaled(_percentile(stats.inter_token, 99), ms),
        "errors": len(stats.errors),
        "error_samples": stats.errors[:3],
    }
    print(f"  {clients:>3} clients: {summary['tokens_per_s']:.0f} tokens/s, "
          f"ttft p50 {summary['ttft_p50_ms']} ms, "
          f"inter-token p99 {summary['inter_token_p99_ms']} ms, errors {len(stats.errors)}",
          file=sys.stderr, flush=True)  # fmt: skip
    return summary


def _scaled(value: float | None, factor: float) -> float | None:
    return None if value is None else round(value * factor, 3)


def table(results: dict[str, Any]) -> str:
    head = f"{'phase':<25}{'tokens/s':>9}{'TTFT p50':>10}{'TTFT p99':>10}{'ITL p50':>9}{'ITL p99':>9}"
    lines = [head + f"{'err':>5}{'load':>6}{'cores':>7}"]
    for key, r in results["phases"].items():
        if "error" in r:
            lines.append(f"{key:<25} {r['error'][:80]}")
            continue
        lines.append(
            f"{key:<25}{r['tokens_per_s']:>9.0f}{_fmt(r['ttft_p50_ms']):>10}{_fmt(r['ttft_p99_ms']):>10}"
            f"{_fmt(r['inter_token_p50_ms']):>9}{_fmt(r['inter_token_p99_ms']):>9}{r['errors']:>5}"
            f"{r.get('loadavg_1m_start', 0):>6.1f}{r.get('server_cores_busy', 0):>7.2f}"
        )
    lines.append("(latencies in ms; load = 1-minute load average at the phase start; cores = server CPU use)")
    for name, value in results["ratios"].items():
        lines.append(f"{name}: {value:.2f}x")
    for name, target in results["targets"].items():
        lines.append(f"target {name}: {'PASS' if target['passed'] else 'FAIL'} ({target['measured']})")
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def summarize(results: dict[str, Any]) -> None:
    phases = results["phases"]

    def tps(key: str) -> float | None:
        value = phases.get(key, {}).get("tokens_per_s")
        return float(value) if value else None

    ratios = {
        "continuous@64 / sequential@64": _div(tps("continuous_c64"), tps("sequential_c64")),
        "continuous@64 / continuous@1": _div(tps("continuous_c64"), tps("continuous_c1")),
        "continuous@64 / static@64": _div(tps("continuous_c64"), tps("static_c64")),
    }
    for key in phases:
        if key.startswith("continuous_") and key.endswith("lanes_c64"):
            lanes = key.removeprefix("continuous_").removesuffix("_c64")
            ratios[f"continuous {lanes}@64 / sequential@64"] = _div(tps(key), tps("sequential_c64"))
    results["ratios"] = {k: round(v, 2) for k, v in ratios.items() if v is not None}
    speedup = results["ratios"].get("continuous@64 / sequential@64")
    itl = phases.get("continuous_c64", {}).get("inter_token_p99_ms")
    results["targets"] = {
        "continuous@64 >= 8x one-at-a-time tokens/s": {
            "passed": speedup is not None and speedup >= 8.0, "measured": f"{speedup}x"
        },
        "continuous@64 inter-token p99 < 50 ms": {
            "passed": itl is not None and itl < 50.0, "measured": f"{itl} ms"
        },
    }  # fmt: skip


def _div(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def log_path(work: Path, label: str) -> Path:
    return work / f"generate_{label}.log"
