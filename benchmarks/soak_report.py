"""The report of ``python -m benchmarks.soak``: the result JSON, its pass/fail checks, a Markdown table.

Split from ``benchmarks/soak.py``: turning what the load recorded into numbers and verdicts is a
separate concern from running the load, and keeps each module within the style limit.
"""

from __future__ import annotations

import argparse
import math
from typing import Any

from benchmarks.soak_client import Recorder, Window, window_stats


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
