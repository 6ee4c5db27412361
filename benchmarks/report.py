"""Targets of issues 4 and 12, judged on one run's results, and the printed table."""

from __future__ import annotations

from typing import Any

MB_PER_WORKER = 250.0
MB_PER_WORKER_12 = 200.0


def _phase(results: dict[str, Any], key: str) -> dict[str, Any] | None:
    phase = results.get("phases", {}).get(key)
    return phase if isinstance(phase, dict) and "rows_per_s" in phase else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def _rows(results: dict[str, Any], key: str) -> float | None:
    phase = _phase(results, key)
    return None if phase is None else float(phase["rows_per_s"])


def fp32_ceiling(results: dict[str, Any]) -> float | None:
    c = results.get("ceiling", {}).get("fp32")
    return None if not c else float(c["rows_per_s"])


def served_ceilings(results: dict[str, Any]) -> dict[str, float]:
    """Server name -> in-process ceiling of the forecaster version that server answered with."""
    by_version = {c["version"]: float(c["rows_per_s"]) for c in results.get("ceiling", {}).values()}
    out = {}
    for server, version in results.get("served_forecast_version", {}).items():
        if f"v{version}" in by_version:
            out[server] = by_version[f"v{version}"]
    return out


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target with the measured value, the threshold and pass/fail (None: not measured)."""
    ceiling = fp32_ceiling(results)
    on64, off64 = _phase(results, "on_c64"), _rows(results, "off_c64")
    on1 = _phase(results, "on_c1")
    naive = _rows(results, "naive_c64")
    multi = _rows(results, "on_multi")
    workers = [m for m in results.get("memory", {}).get("service_on", []) if m["role"] == "worker"]
    workers += [m for m in results.get("memory", {}).get("service_off", []) if m["role"] == "worker"]
    peak = max((m["peak_rss_mb"] for m in workers), default=None)

    def judge(value: float | None, threshold: float, higher_is_better: bool) -> bool | None:
        if value is None:
            return None
        return value >= threshold if higher_is_better else value <= threshold

    on64_frac = _ratio(None if on64 is None else on64["rows_per_s"], ceiling)
    on64_p99 = None if on64 is None else float(on64["latency_ms"]["p99"])
    out: list[tuple[str, str, float | None, float, bool, str]] = [
        ("1a", "single series, 64 clients: rows/s / fp32 ceiling", on64_frac, 0.45, True, "ratio"),
        ("1b", "single series, 64 clients: p99 (ms)", on64_p99, 60.0, False, "ms"),
        ("2", "batching on / off, 64 clients", _ratio(_rows(results, "on_c64"), off64), 1.5, True, "x"),
        (
            "3",
            "1 client: p50 (ms)",
            None if on1 is None else float(on1["latency_ms"]["p50"]),
            2.0,
            False,
            "ms",
        ),
        (
            "4",
            "32 series/request, 16 clients: rows/s / fp32 ceiling",
            _ratio(multi, ceiling),
            0.75,
            True,
            "ratio",
        ),
        ("5", "vs naive baseline, 64 clients", _ratio(_rows(results, "on_c64"), naive), 3.0, True, "x"),
        ("6", "peak RSS per worker (MB)", peak, MB_PER_WORKER, False, "MB"),
        (
            "7",
            "V2 binary / v1 JSON rows/s, 64 clients, paired",
            _paired(results, "v2_binary", _ratio(_rows(results, "v2bin_c64"), _rows(results, "on_c64"))),
            1.0,
            True,
            "x",
        ),
    ]
    out += issue12_targets(results, peak)
    return [
        {
            "id": tid,
            "target": text,
            "value": value,
            "threshold": threshold,
            "op": ">=" if higher else "<=",
            "unit": unit,
            "passed": judge(value, threshold, higher),
        }
        for tid, text, value, threshold, higher, unit in out
    ]


def issue12_targets(
    results: dict[str, Any], peak_rss_mb: float | None
) -> list[tuple[str, str, float | None, float, bool, str]]:
    """Issue 12: every ratio against the service's own layout (N processes x 1 thread)."""
    on64, on1 = _phase(results, "on_c64"), _phase(results, "on_c1")
    layout = results.get("layout_ceiling", {}).get("rows_per_s")
    run1 = results.get("batch1_run", {}).get("median_ms")
    gap = None if on1 is None or run1 is None else float(on1["latency_ms"]["p50"]) - float(run1)
    outside = None if on64 is None else on64.get("server_cpu_ms_per_request_outside_ort")
    sentiment = _sentiment_ceiling(results)
    unpaired_sentiment = _ratio(_rows(results, "sentiment_c64"), sentiment)
    return [
        ("12.1", "single series, 64 clients: rows/s / N x 1 layout ceiling, paired",
         _paired(results, "forecast", _ratio(_rows(results, "on_c64"), layout)), 0.60, True, "ratio"),
        ("12.2", "vs PyTriton, 64 clients, rows/s",
         _ratio(_rows(results, "on_c64"), _rows(results, "pytriton_c64")), 1.6, True, "x"),
        ("12.3", "single series, 64 clients: p99 (ms)",
         None if on64 is None else float(on64["latency_ms"]["p99"]), 50.0, False, "ms"),
        ("12.4", "1 client: p50 - batch-1 session.run median (ms)", gap, 0.6, False, "ms"),
        ("12.5", "64 clients: server CPU/request outside session.run (ms)", outside, 0.3, False, "ms"),
        ("12.6", "sentiment, 64 clients: rows/s / its N x 1 ceiling, paired",
         None if sentiment is None else _paired(results, "sentiment", unpaired_sentiment),
         0.60, True, "ratio"),
        ("12.7", "peak RSS per worker (MB)", peak_rss_mb, MB_PER_WORKER_12, False, "MB"),
    ]  # fmt: skip


def _paired(results: dict[str, Any], task: str, unpaired: float | None) -> float | None:
    """The ratio with the ceiling measured next to the load (benchmarks/paired.py), when the run has it;
    the start-of-run ratio otherwise (older results, ``--paired-rounds 0``)."""
    measured = results.get("paired", {}).get(task)
    return unpaired if measured is None else float(measured["ratio"])


def _sentiment_ceiling(results: dict[str, Any]) -> float | None:
    """The sentiment layout ceiling, only when it measured the version the service answered with."""
    layout = results.get("sentiment_layout_ceiling")
    served = results.get("served", {}).get("sentiment", "")
    if not layout or not served.endswith(" " + layout["version"]):
        return None
    return float(layout["rows_per_s"])


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "n/a"
    if unit == "ratio":
        return f"{100 * value:.1f}%"
    if unit == "x":
        return f"{value:.2f}x"
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def table(results: dict[str, Any]) -> str:
    meta = results["meta"]
    lines = [
        f"seqserve benchmark  {meta['started_utc']}  {meta['cpu_count']} CPUs ({meta['cpu_model']})"
        f"  load avg at start {meta['loadavg_start']:.2f}  {meta['duration_s']} s per phase"
        f"  workers {meta['workers']}  wrk {meta['wrk_version']}",
        "",
    ]
    ceiling = fp32_ceiling(results)
    c = results.get("ceiling", {})
    if c:
        lines.append(
            f"1. In-process ONNX Runtime ceiling: context {meta['context_length']},"
            f" intra-op threads {meta['ceiling_threads']}, rows/s (median of rounds; best round)"
        )
        lines.append(
            f"   {'model':<22} " + " ".join(f"{'batch ' + str(p['batch']):>16}" for p in c["fp32"]["points"])
        )
        for label, key in (
            ("fp32 " + c["fp32"]["version"], "fp32"),
            ("int8 " + c.get("int8", {}).get("version", ""), "int8"),
        ):
            if key not in c:
                continue
            cells = [
                f"{p['rows_per_s_median']:>7.0f} ({p['rows_per_s_best']:>5.0f})" for p in c[key]["points"]
            ]
            best = c[key]
            lines.append(
                f"   {label:<22} "
                + " ".join(f"{cell:>16}" for cell in cells)
                + f"   ceiling {best['rows_per_s']:.0f} at batch {best['best_batch']}"
                + f" = {best['rows_per_s'] / c['fp32']['rows_per_s']:.2f}x fp32"
            )
        layout = results.get("layout_ceiling")
        if layout:
            cells = [
                f"{p['rows_per_s_median']:>7.0f} ({p['rows_per_s_best']:>5.0f})" for p in layout["points"]
            ]
            label = f"fp32 {layout['version']} {layout['processes']}x1 thr"
            lines.append(
                f"   {label:<22} "
                + " ".join(f"{cell:>16}" for cell in cells)
                + f"   ceiling {layout['rows_per_s']:.0f} at batch {layout['best_batch']}"
                + f" = {layout['rows_per_s'] / c['fp32']['rows_per_s']:.2f}x fp32"
            )
            lines.append(
                f"   ({layout['processes']}x1 thr: {layout['processes']} processes with one intra-op thread"
                " each, at once: the service's layout; issue 4's targets use the 2-thread ceiling above,"
                " issue 12's this one)"
            )
        run1 = results.get("batch1_run")
        if run1:
            lines.append(
                f"   batch-1 session.run, {run1['intra_op_threads']} thread:"
                f" median {run1['median_ms']:.2f} ms"
                f" (p10 {run1['p10_ms']:.2f}, p90 {run1['p90_ms']:.2f}; {run1['calls']} calls)"
            )
        sent = results.get("sentiment_layout_ceiling")
        if sent:
            lines.append(
                f"   sentiment {sent['version']} {sent['processes']}x1 thr: ceiling {sent['rows_per_s']:.0f}"
                f" rows/s at batch {sent['best_batch']} (real SST-2 reviews, padded per batch)"
            )
        lines.append("")

    header = (
        f"   {'phase':<36} {'conns':>5} {'req/s':>8} {'rows/s':>8} {'p50 ms':>7} {'p99 ms':>7}"
        f" {'errors':>6} {'x fp32 ceil':>11} {'x own ceil':>10} {'wrk CPU':>7} {'srv CPU':>7}"
    )
    served = results.get("served", {})
    own_ceiling = served_ceilings(results)
    lines.append(
        f"2-5. Service ({served.get('forecast', '?')}, {served.get('sentiment', 'no sentiment model')})"
        f" and naive baseline; CPU in cores"
    )
    lines.append(
        "   (x own ceil: rows/s over the in-process ceiling of the forecaster version that server used)"
    )
    lines.append(header)
    for key, phase in results.get("phases", {}).items():
        label = phase.get("label", key)
        if "rows_per_s" not in phase:
            lines.append(
                f"   {label:<36} {phase.get('connections', ''):>5}"
                f" {phase.get('skipped') or phase.get('error')}"
            )
            continue
        lat = phase["latency_ms"]
        forecast = phase["path"] == "/v1/forecast" and "model" not in phase  # ceilings are the default's
        frac = _ratio(phase["rows_per_s"], ceiling) if forecast else None
        own = _ratio(phase["rows_per_s"], own_ceiling.get(phase.get("server", ""))) if forecast else None
        srv = phase["server_cpu_cores"]
        lines.append(
            f"   {label:<36} {phase['connections']:>5}"
            f" {phase['requests_per_s']:>8.0f} {phase['rows_per_s']:>8.0f}"
            f" {lat['p50']:>7.2f} {lat['p99']:>7.2f} {phase['error_count']:>6}"
            f" {_fmt(frac, 'ratio'):>11} {_fmt(own, 'ratio'):>10} {phase['wrk_cpu_cores']:>7.2f}"
            f" {'n/a' if srv is None else f'{srv:.2f}':>7}"
        )
    for name, peer in results.get("peers", {}).items():
        diff = peer.get("max_abs_diff_vs_seqserve")
        shown = f"{diff:.1e}" if isinstance(diff, float) else diff
        lines.append(f"   peer {name}: max |answer - seqserve's| on the check request: {shown}")
    for key in ("on_c64", "sentiment_c64"):
        phase = _phase(results, key)
        if phase is not None and phase.get("server_cpu_ms_per_request_outside_ort") is not None:
            lines.append(
                f"   {phase['label']} @{phase['connections']}: server CPU outside session.run"
                f" {phase['server_cpu_ms_per_request_outside_ort']:.2f} core-ms/request (batch threads"
                f" {1000 * phase['ort_thread_cpu_seconds'] / max(1, phase['requests']):.2f}; lower bound from"
                f" session.run wall time {phase['server_cpu_ms_per_request_outside_ort_lower_bound']:.2f})"
            )
    gap = gap_12_1(results)
    if gap is not None:
        lines.append(gap)
    lines.extend(paired_lines(results))
    ratios = results.get("ratios", {})
    if ratios:
        lines.append("   ratios: " + ", ".join(f"{k} {_fmt(v, 'x')}" for k, v in ratios.items()))
    lines.append("")

    lines.append(
        "6. Memory after the run (MB = 10^6 bytes): peak RSS (VmHWM) / current RSS"
        " (anonymous + file-backed, the latter shared between workers)"
    )
    for name, procs in results.get("memory", {}).items():
        for m in procs:
            lines.append(
                f"   {name:<12} {m['role']:<10} pid {m['pid']:<7}"
                f" peak {m['peak_rss_mb']:7.1f}  now {m['rss_mb']:7.1f}"
                + (f" ({m['rss_anon_mb']:.1f} + {m['rss_file_mb']:.1f})" if "rss_anon_mb" in m else "")
            )
    lines.append("")
    lines.append("Targets")
    for t in results.get("targets", []):
        verdict = {True: "PASS", False: "FAIL", None: "n/a"}[t["passed"]]
        threshold = _fmt(t["threshold"], t["unit"])
        lines.append(
            f"   {t['id']:<4} {t['target']:<56} {_fmt(t['value'], t['unit']):>9}"
            f" {t['op']} {threshold:<7} {verdict}"
        )
    return "\n".join(lines)


def gap_12_1(results: dict[str, Any]) -> str | None:
    """Where target 12.1's gap goes in this run: ORT per row in the service and in the ceiling's loop,
    the rest of the server per request, and the ratio the service would reach with that rest at zero."""
    phase, layout = _phase(results, "on_c64"), results.get("layout_ceiling")
    cpus = results.get("meta", {}).get("cpu_count")
    if phase is None or not layout or not cpus or phase.get("ort_thread_cpu_seconds") is None:
        return None
    ort_ms = 1000 * phase["ort_thread_cpu_seconds"] / max(1, phase["requests"])
    ceiling_ms = {p["batch"]: 1000 * layout["processes"] / p["rows_per_s_median"] for p in layout["points"]}
    # Cores left to the server once wrk has its share, all spent in session.run at the service's cost.
    ort_only = (cpus - phase["wrk_cpu_cores"]) / (ort_ms / 1000) / layout["rows_per_s"]
    at4 = f"{ceiling_ms[4]:.3f} at batch 4, " if 4 in ceiling_ms else ""
    return (
        f"   12.1, where the gap goes @64: session.run {ort_ms:.3f} core-ms/row in the batch threads (the"
        f" ceiling's loop: {at4}{ceiling_ms[layout['best_batch']]:.3f} at its best batch"
        f" {layout['best_batch']}); the rest of the server"
        f" {phase.get('server_cpu_ms_per_request_outside_ort', float('nan')):.3f} core-ms/request; wrk"
        f" {phase['wrk_cpu_cores']:.2f} cores. With that rest at zero the ratio would be {ort_only:.2f}."
    )


def paired_lines(results: dict[str, Any]) -> list[str]:
    """One line per paired measurement (benchmarks/paired.py): each round's load over its ceilings."""
    lines = []
    for task, target, reference in (
        ("forecast", "12.1", "the layout ceilings"),
        ("sentiment", "12.6", "the layout ceilings"),
        ("v2_binary", "7", "the v1 JSON loads"),
    ):
        measured = results.get("paired", {}).get(task)
        if measured is None:
            continue
        rounds = "; ".join(
            f"{r['rows_per_s']:,.0f} / {(r['ceiling_before'] + r['ceiling_after']) / 2:,.0f}"
            f" = {r['ratio']:.3f}"
            for r in measured["rounds"]
        )
        lines.append(
            f"   {target}, paired @{measured['connections']}: rows/s over the mean of {reference}"
            f" measured just before and after each round: {rounds}; median {measured['ratio']:.3f}"
            f" (those moved by up to {100 * (measured['ceiling_spread'] - 1):.0f}%)"
        )
    return lines
