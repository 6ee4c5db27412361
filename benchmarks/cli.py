"""``python -m benchmarks``: every measurement of issue 4 in one run; a table and a JSON file.

Order: the in-process ceiling first (nothing else running), then the service with batching on
(single series at each concurrency, 32 series per request, sentiment), the service with batching
off, and the naive baseline. Each server runs as a subprocess on a free loopback port and is
stopped before the next one starts, so only one competes with wrk for the CPU at a time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks import ceiling, layout_ceiling, loadgen, paired, payloads, report, sentiment_ceiling
from benchmarks.server import Server, ServerError, free_port

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = Path(__file__).resolve().parent / "results"
FORECAST_PATH, SENTIMENT_PATH = "/v1/forecast", "/v1/sentiment"
BODY_VARIANTS = payloads.BODY_VARIANTS
PEERS = ("pytriton",)
PEERS_DIR = Path.home() / ".cache" / "seqserve-bench"


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def _names(text: str) -> list[str]:
    names = [x.strip() for x in text.split(",") if x.strip()]
    unknown = sorted(set(names) - set(PEERS))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown peer(s) {unknown}; known: {list(PEERS)}")
    return names


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    p.add_argument("--duration", type=int, default=10, help="seconds per load phase (default 10)")
    p.add_argument("--warmup", type=int, default=2, help="seconds of unrecorded load after each start")
    p.add_argument("--workers", type=int, default=2, help="SEQSERVE_WORKERS for the service (default 2)")
    p.add_argument("--connections", type=_ints, default=[1, 16, 64], metavar="1,16,64", help="single series")
    p.add_argument("--multi-series", type=int, default=32, help="series per request in the multi phase")
    p.add_argument("--multi-connections", type=int, default=16)
    p.add_argument("--sentiment-connections", type=_ints, default=[1, 64], metavar="1,64")
    p.add_argument("--naive-connections", type=_ints, default=[64], metavar="64")
    p.add_argument("--context-length", type=int, default=336, help="values per series")
    # Small batches belong in the sweep: this LSTM's per-row cost is lowest near batch 4-16 (its input
    # projections for all 336 steps stop fitting in cache beyond that), so the best batch is not the largest.
    p.add_argument(
        "--ceiling-batches", type=_ints, default=[1, 2, 4, 8, 16, 32, 64, 128, 256], metavar="1,2,...,256"
    )
    p.add_argument("--ceiling-seconds", type=float, default=2.0, help="per batch size and model")
    p.add_argument("--ceiling-threads", type=int, default=2, help="ORT intra-op threads in process")
    # Targets 12.1 and 12.6: the layout ceiling and the 64-connection load in turn (benchmarks/paired.py).
    p.add_argument("--paired-rounds", type=int, default=3, help="load rounds between ceilings (0 = off)")
    p.add_argument("--paired-seconds", type=int, default=5, help="seconds per paired load round")
    p.add_argument("--paired-ceiling-seconds", type=float, default=2.0, help="seconds per paired ceiling")
    p.add_argument("--models", type=Path, default=REPO_ROOT / "models", help="model repository")
    p.add_argument("--forecaster", default="m4-hourly")
    # The accuracy/speed choice (README, Models): the ensemble at 64 connections and at --multi-series.
    p.add_argument("--ensemble", default="m4-hourly-ensemble", help="also load this forecaster ('' = skip)")
    # The model /v1/sentiment serves by default (SEQSERVE_DEFAULT_MODELS), so the ratio compares like
    # with like; version '' = the one the service picks (service/runtime/versions.py).
    p.add_argument("--sentiment-model", default="sst2-distilled", help="for its own layout ceiling")
    p.add_argument("--sentiment-version", default="", help="default: the version the service serves")
    p.add_argument("--fp32-version", default="1")
    p.add_argument("--int8-version", default="2")
    p.add_argument(
        "--service-env",
        action="append",
        default=[],
        metavar="SEQSERVE_X=VALUE",
        help="extra service setting, repeatable (e.g. SEQSERVE_MAX_QUEUE_DELAY_SECONDS=0.001)",
    )
    p.add_argument("--skip", action="append", default=[], choices=["ceiling", "on", "off", "naive"])
    p.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    # Other serving stacks on the same model and series (benchmarks/peers/), each in its own venv.
    p.add_argument("--peers", type=_names, default=[], metavar="pytriton", help="peers to run too")
    p.add_argument("--peers-dir", type=Path, default=PEERS_DIR, help="where peer venvs are installed")
    p.add_argument("--peer-instances", type=int, default=2, help="model instances (x 1 thread) per peer")
    # The cost of drift monitoring (benchmarks/drift_ab.py) runs on its own: bin/bench --drift-ab.
    p.add_argument("--drift-ab", action="store_true", help="only the drift on/off A/B (interleaved rounds)")
    p.add_argument("--drift-connections", type=int, default=64)
    p.add_argument("--drift-rounds", type=int, default=4)
    # The generation benchmark (benchmarks/generation.py) runs on its own: bin/bench --only generate.
    p.add_argument("--only", choices=["generate"], help="run only this benchmark")
    p.add_argument("--gen-model", default="shakespeare-char")
    p.add_argument("--gen-clients", type=_ints, default=[1, 16, 64], metavar="1,16,64")
    p.add_argument("--gen-baseline-clients", type=int, default=64, help="clients of the two baselines")
    p.add_argument("--gen-tokens", type=_ints, default=[32, 256], metavar="MIN,MAX", help="max_new_tokens")
    p.add_argument("--gen-temperature", type=float, default=0.8)
    p.add_argument("--gen-seed", type=int, default=2026)
    p.add_argument("--gen-duration", type=float, default=20.0, help="measured seconds per phase")
    p.add_argument("--gen-warmup", type=float, default=3.0, help="unmeasured seconds before each phase")
    p.add_argument("--gen-workers", type=int, default=1, help="SEQSERVE_WORKERS for the generation phases")
    p.add_argument("--gen-intra-op-threads", type=int, default=1, help="SEQSERVE_ORT_INTRA_OP_THREADS there")
    p.add_argument(
        "--gen-lanes",
        type=int,
        default=0,
        help="SEQSERVE_GENERATION_LANES of the continuous phases (0 = the service default, cores / threads)",
    )
    p.add_argument(
        "--gen-compare-lanes",
        type=int,
        default=1,
        help="also continuous at 64 with this many lanes in one worker (0 = no)",
    )
    p.add_argument(
        "--gen-compare-workers",
        type=int,
        default=2,
        help="also continuous at 64 with this many workers (0 = no)",
    )
    return p.parse_args(argv)


def settings_fields() -> set[str]:
    """The service's setting names right now: Settings forbids unknown SEQSERVE_* variables."""
    from service.config import Settings

    return set(Settings.model_fields)


def service_env(args: argparse.Namespace, port: int, batching: bool, fields: set[str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEQSERVE_")}
    wanted: dict[str, str] = {
        "model_repository": str(args.models),
        "host": "127.0.0.1",
        "port": str(port),
        "log_level": "warning",
        "workers": str(args.workers),
        "batching_enabled": "true" if batching else "false",
    }
    for name, value in wanted.items():
        if name in fields:
            env[f"SEQSERVE_{name.upper()}"] = value
    for item in args.service_env:
        key, sep, value = item.partition("=")
        if not sep or not key.startswith("SEQSERVE_") or key[len("SEQSERVE_") :].lower() not in fields:
            raise SystemExit(f"--service-env {item!r}: not a SEQSERVE_* setting of service/config.py")
        env[key] = value
    return env


def _meta(args: argparse.Namespace, fields: set[str]) -> dict[str, Any]:
    cpu_model = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu_model = line.split(":", 1)[1].strip()
            break
    import onnxruntime

    return {
        "started_utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model,
        "loadavg_start": os.getloadavg()[0],
        "python": platform.python_version(),
        "onnxruntime": onnxruntime.__version__,
        "wrk_version": loadgen.wrk_version(),
        "commit": _commit(),
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "workers": args.workers if "workers" in fields else "1 (no workers setting)",
        "context_length": args.context_length,
        "ceiling_threads": args.ceiling_threads,
        "service_settings_available": sorted(fields),
        "argv": sys.argv[1:],
    }


def _commit() -> str | None:
    """HEAD's commit, read from .git without running git."""
    git = REPO_ROOT / ".git"
    try:
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head
        ref = head[5:]
        if (git / ref).exists():
            return (git / ref).read_text().strip()
        for line in (git / "packed-refs").read_text().splitlines():
            if line.endswith(" " + ref):
                return line.split()[0]
    except OSError:
        return None
    return None


def run_ceiling(args: argparse.Namespace, results: dict[str, Any]) -> None:
    contexts = payloads.load_m4_series(args.context_length)
    for key, version in (("fp32", args.fp32_version), ("int8", args.int8_version)):
        path = args.models / args.forecaster / version / "model.onnx"
        if not path.exists():
            print(f"ceiling {key}: {path} missing, skipped", file=sys.stderr)
            continue
        print(f"ceiling {key} ({path}) ...", file=sys.stderr, flush=True)
        r = ceiling.measure(path, contexts, args.ceiling_batches, args.ceiling_seconds, args.ceiling_threads)
        results["ceiling"][key] = {**r, "version": f"v{version}"}
        if key == "fp32":
            print(f"layout ceiling: {args.workers} processes x 1 thread ...", file=sys.stderr, flush=True)
            layout = layout_ceiling.measure_processes(
                path, contexts, args.ceiling_batches, args.ceiling_seconds, args.workers
            )
            results["layout_ceiling"] = {**layout, "version": f"v{version}"}
            print("batch-1 session.run latency, 1 thread ...", file=sys.stderr, flush=True)
            results["batch1_run"] = ceiling.batch1_run_ms(path, contexts)
    run_sentiment_ceiling(args, results)


def run_sentiment_ceiling(args: argparse.Namespace, results: dict[str, Any]) -> None:
    version = args.sentiment_version or _served_version(args.models / args.sentiment_model)
    version_dir = args.models / args.sentiment_model / version
    if not (version_dir / "model.onnx").exists():
        print(f"sentiment layout ceiling: no {version_dir}/model.onnx, skipped", file=sys.stderr)
        return
    print(f"sentiment layout ceiling: {args.workers} processes x 1 thread ...", file=sys.stderr, flush=True)
    texts = payloads.short_reviews(BODY_VARIANTS)
    layout = sentiment_ceiling.measure_processes(
        version_dir, texts, args.ceiling_batches, args.ceiling_seconds, args.workers
    )
    results["sentiment_layout_ceiling"] = {**layout, "model": args.sentiment_model, "version": f"v{version}"}


def _served_version(model_dir: Path) -> str:
    """The version the service serves by default (highest that does not opt out), or '' if none."""
    from service.runtime.versions import choose_default, version_folders

    folders = version_folders(model_dir) if model_dir.is_dir() else {}
    return str(choose_default(folders, folders, None)) if folders else ""


def load_phase(
    server: Server,
    results: dict[str, Any],
    key: str,
    label: str,
    path: str,
    bodies: Path,
    connections: int,
    rows: int,
    duration: int,
) -> None:
    print(f"{label}, {connections} connections ...", file=sys.stderr, flush=True)
    ort_before, threads_before = ort_seconds(server), server.thread_cpu_seconds()
    try:
        r = loadgen.run_wrk(server.base_url, path, bodies, connections, duration, rows, server.cpu_seconds)
    except loadgen.LoadGenError as exc:
        results["phases"][key] = {"label": label, "connections": connections, "error": str(exc)}
        return
    ort_after, threads_after = ort_seconds(server), server.thread_cpu_seconds()
    if ort_before is not None and ort_after is not None and r["server_cpu_seconds"] is not None:
        r["ort_seconds"] = ort_after - ort_before
        r.update(cpu_outside_ort(r, threads_before, threads_after, r["ort_seconds"]))
    results["phases"][key] = {"label": label, "server": server.name, **r}


def cpu_outside_ort(
    r: dict[str, Any],
    before: dict[tuple[int, int], float],
    after: dict[tuple[int, int], float],
    ort_wall_seconds: float,
) -> dict[str, Any]:
    """Server CPU per request spent outside session.run, in core-ms.

    With one intra-op thread, session.run executes in the batcher's own thread, which does little
    else: per worker, the busiest thread other than the event loop (tid == pid) is taken as ORT's
    CPU. session.run's wall time (seqserve_inference_duration_seconds) is only an upper bound of its
    CPU on a shared machine, where it is inflated by waiting for a core, so it gives a lower bound.
    """
    requests = r["requests"]
    if not requests:
        return {}
    deltas: dict[int, list[tuple[int, float]]] = {}
    for (pid, tid), cpu in after.items():
        deltas.setdefault(pid, []).append((tid, cpu - before.get((pid, tid), 0.0)))
    batch_threads = sum(
        max((d for tid, d in threads if tid != pid), default=0.0) for pid, threads in deltas.items()
    )
    total = r["server_cpu_seconds"]
    return {
        "ort_thread_cpu_seconds": batch_threads,
        "server_cpu_ms_per_request_outside_ort": 1000.0 * (total - batch_threads) / requests,
        "server_cpu_ms_per_request_outside_ort_lower_bound": 1000.0 * (total - ort_wall_seconds) / requests,
    }


def ort_seconds(server: Server) -> float | None:
    """Sum of seqserve_inference_duration_seconds over every model and worker (from /metrics)."""
    status, text = server.get("/metrics")
    if status != 200:
        return None
    total, found = 0.0, False
    for line in text.splitlines():
        if line.startswith("seqserve_inference_duration_seconds_sum"):
            total += float(line.rsplit(" ", 1)[1])
            found = True
    return total if found else None


def _check(server: Server, path: str, bodies: Path, rows: int, answer_key: str) -> tuple[bool, Any]:
    """One request by hand: it must succeed and answer every row."""
    status, body = server.post_json(path, bodies.read_text().splitlines()[0])
    ok = status == 200 and isinstance(body, dict) and len(body.get(answer_key, [])) == rows
    return ok, body if ok else f"HTTP {status}: {str(body)[:500]}"


def run_service(
    args: argparse.Namespace,
    results: dict[str, Any],
    work: Path,
    batching: bool,
    fields: set[str],
    files: dict[str, Path],
) -> None:
    tag = "on" if batching else "off"
    if not batching and "batching_enabled" not in fields:
        results["phases"][f"{tag}_c64"] = {"label": "batching off", "skipped": "no batching_enabled setting"}
        return
    port = free_port()
    env = service_env(args, port, batching, fields)
    results["service_env"][tag] = {k: v for k, v in env.items() if k.startswith("SEQSERVE_")}
    server = Server(
        f"service_{tag}", [sys.executable, "-m", "service"], env, port, work / f"service_{tag}.log"
    )
    print(f"starting the service, batching {tag} ...", file=sys.stderr, flush=True)
    try:
        server.start()
        ok, answer = _check(server, FORECAST_PATH, files["single"], 1, "forecasts")
        if not ok:
            raise ServerError(f"forecast check failed: {answer}")
        # Peers' answers to the same first body are compared with this one.
        results["checks"].setdefault("forecast", answer["forecasts"][0])
        served = answer["model"]
        results["served"]["forecast"] = f"{served['name']} v{served['version']}"
        results["served_forecast_version"][server.name] = served["version"]
        if args.warmup:
            loadgen.run_wrk(server.base_url, FORECAST_PATH, files["single"], 16, args.warmup, 1)
        for c in args.connections:
            label = f"1 series/req, batching {tag}"
            load_phase(
                server, results, f"{tag}_c{c}", label, FORECAST_PATH, files["single"], c, 1, args.duration
            )
        if batching:
            paired.run(args, server, results, "forecast", FORECAST_PATH, files["single"])
            run_v2_binary(args, server, results, files["v2_single"])
            paired.run_v2_binary(args, server, results, files["single"], files["v2_single"], args.forecaster)
            n = args.multi_series
            load_phase(
                server,
                results,
                f"{tag}_multi",
                f"{n} series/req, batching {tag}",
                FORECAST_PATH,
                files["multi"],
                args.multi_connections,
                n,
                args.duration,
            )
            if "ensemble_single" in files:
                run_ensemble_phases(args, server, results, files)
            ok, answer = _check(server, SENTIMENT_PATH, files["sentiment"], 1, "results")
            for c in args.sentiment_connections:
                key, label = f"sentiment_c{c}", f"sentiment 1 review/req, batching {tag}"
                if not ok:
                    results["phases"][key] = {"label": label, "connections": c, "skipped": str(answer)[:300]}
                    continue
                results["served"]["sentiment"] = f"{answer['model']['name']} v{answer['model']['version']}"
                load_phase(
                    server, results, key, label, SENTIMENT_PATH, files["sentiment"], c, 1, args.duration
                )
            if ok:
                paired.run(args, server, results, "sentiment", SENTIMENT_PATH, files["sentiment"])
        results["memory"][f"service_{tag}"] = server.memory()
    except ServerError as exc:
        results["phases"][f"{tag}_error"] = {"label": f"service, batching {tag}", "error": str(exc)[-1500:]}
    finally:
        server.stop()


def run_ensemble_phases(
    args: argparse.Namespace, server: Server, results: dict[str, Any], files: dict[str, Path]
) -> None:
    """The ensemble beside the default forecaster, on the same server: 1 series at 64 connections, and
    --multi-series per request at --multi-connections. Its phases carry ``model`` so the report does not
    divide them by the default forecaster's ceiling."""
    n, name = args.multi_series, args.ensemble
    for key, label, body, conns, rows in (
        ("ens_c64", f"{name}: 1 series/req", files["ensemble_single"], 64, 1),
        ("ens_multi", f"{name}: {n} series/req", files["ensemble_multi"], args.multi_connections, n),
    ):
        load_phase(server, results, key, label, FORECAST_PATH, body, conns, rows, args.duration)
        results["phases"][key]["model"] = name


def run_v2_binary(args: argparse.Namespace, server: Server, results: dict[str, Any], bodies: Path) -> None:
    """The same series over the Open Inference Protocol with binary tensors, at the same concurrencies."""
    path = f"/v2/models/{args.forecaster}/infer"
    for c in args.connections:
        key, label = f"v2bin_c{c}", "1 series/req, V2 binary tensors"
        print(f"{label}, {c} connections ...", file=sys.stderr, flush=True)
        try:
            r = loadgen.run_wrk(server.base_url, path, bodies, c, args.duration, 1, server.cpu_seconds,
                                script=loadgen.V2_LUA_SCRIPT)  # fmt: skip
        except loadgen.LoadGenError as exc:
            results["phases"][key] = {"label": label, "connections": c, "error": str(exc)}
            continue
        results["phases"][key] = {"label": label, "server": server.name, **r}


def run_naive(args: argparse.Namespace, results: dict[str, Any], work: Path, files: dict[str, Path]) -> None:
    version_dir = args.models / args.forecaster / args.fp32_version
    if not (version_dir / "torch_state.pt").exists():
        results["phases"]["naive_c64"] = {"label": "naive", "skipped": f"no {version_dir}/torch_state.pt"}
        return
    port = free_port()
    env = {**os.environ, "NAIVE_MODEL_DIR": str(version_dir), "PYTHONPATH": str(REPO_ROOT)}
    argv = [sys.executable, "-m", "uvicorn", "benchmarks.naive_app:app", "--host", "127.0.0.1"]
    argv += ["--port", str(port), "--log-level", "warning"]
    server = Server("naive", argv, env, port, work / "naive.log")
    print("starting the naive baseline ...", file=sys.stderr, flush=True)
    try:
        server.start()
        ok, answer = _check(server, FORECAST_PATH, files["single"], 1, "forecasts")
        if not ok:
            raise ServerError(f"naive forecast check failed: {answer}")
        results["served_forecast_version"][server.name] = answer["model"]["version"]
        if args.warmup:
            loadgen.run_wrk(server.base_url, FORECAST_PATH, files["single"], 16, args.warmup, 1)
        for c in args.naive_connections:
            label = "naive: torch eager in async def"
            load_phase(
                server, results, f"naive_c{c}", label, FORECAST_PATH, files["single"], c, 1, args.duration
            )
        results["memory"]["naive"] = server.memory()
    except ServerError as exc:
        results["phases"]["naive_error"] = {"label": "naive", "error": str(exc)[-1500:]}
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.models = args.models.resolve()
    if args.drift_ab:
        from benchmarks import drift_ab

        return drift_ab.run(args, _meta(args, settings_fields()), settings_fields())
    if args.only == "generate":
        from benchmarks import generation_cli

        return generation_cli.run(args, _meta(args, settings_fields()))
    try:
        loadgen.wrk_binary()
    except loadgen.LoadGenError as exc:
        print(exc, file=sys.stderr)
        return 2
    fields = settings_fields()
    results: dict[str, Any] = {
        "meta": _meta(args, fields),
        "ceiling": {},
        "phases": {},
        "served": {},
        "served_forecast_version": {},
        "service_env": {},
        "memory": {},
        "peers": {},
        "checks": {},
    }
    if results["meta"]["loadavg_start"] > 0.5:
        print(
            f"warning: load average {results['meta']['loadavg_start']:.2f}: the machine is busy",
            file=sys.stderr,
        )
    with tempfile.TemporaryDirectory(prefix="seqserve-bench-") as tmp:
        work = Path(tmp)
        files = {
            "single": payloads.write_lines(
                work / "single.jsonl", payloads.forecast_bodies(args.context_length, 1, BODY_VARIANTS)
            ),
            "multi": payloads.write_lines(
                work / "multi.jsonl",
                payloads.forecast_bodies(args.context_length, args.multi_series, BODY_VARIANTS),
            ),
            "sentiment": payloads.write_lines(
                work / "sentiment.jsonl", payloads.sentiment_bodies(BODY_VARIANTS)
            ),
            "v2_json_single": payloads.write_lines(
                work / "v2_json_single.jsonl", payloads.v2_json_bodies(args.context_length, 1, BODY_VARIANTS)
            ),
            "v2_single": payloads.write_v2_records(
                work / "v2_single.bin", payloads.v2_binary_records(args.context_length, 1, BODY_VARIANTS)
            ),
        }
        if args.ensemble and (args.models / args.ensemble).is_dir():
            for key, n in (("ensemble_single", 1), ("ensemble_multi", args.multi_series)):
                bodies = payloads.forecast_bodies(args.context_length, n, BODY_VARIANTS, args.ensemble)
                files[key] = payloads.write_lines(work / f"{key}.jsonl", bodies)
        if "ceiling" not in args.skip:
            run_ceiling(args, results)
        if "on" not in args.skip:
            run_service(args, results, work, True, fields, files)
        if "pytriton" in args.peers:
            from benchmarks.peers import pytriton_peer

            model_path = args.models / args.forecaster / args.fp32_version / "model.onnx"
            pytriton_peer.run(args, results, work, files["v2_json_single"], model_path)
        if "off" not in args.skip:
            run_service(args, results, work, False, fields, files)
        if "naive" not in args.skip:
            run_naive(args, results, work, files)
        for key in ("service_on", "service_off", "naive", "pytriton"):
            log = work / f"{key}.log"
            if log.exists():
                results.setdefault("server_log_tails", {})[key] = log.read_text(errors="replace")[-2000:]

    rows = {k: v.get("rows_per_s") for k, v in results["phases"].items()}
    ceil = report.fp32_ceiling(results)
    layout_rows = results.get("layout_ceiling", {}).get("rows_per_s")
    results["ratios"] = {
        name: value
        for name, value in {
            "on/off @64": _div(rows.get("on_c64"), rows.get("off_c64")),
            "on/naive @64": _div(rows.get("on_c64"), rows.get("naive_c64")),
            "int8/fp32 ceiling": _div(results["ceiling"].get("int8", {}).get("rows_per_s"), ceil),
            "on @64/layout ceiling": _div(rows.get("on_c64"), layout_rows),
            "32 series/layout ceiling": _div(rows.get("on_multi"), layout_rows),
            "v2 binary/v1 json @64": _div(rows.get("v2bin_c64"), rows.get("on_c64")),
            "ensemble/default @64": _div(rows.get("ens_c64"), rows.get("on_c64")),
            "ensemble/default 32 series": _div(rows.get("ens_multi"), rows.get("on_multi")),
            **{
                f"on/pytriton @{c}": _div(rows.get(f"on_c{c}"), rows.get(f"pytriton_c{c}"))
                for c in args.connections
            },
        }.items()
        if value is not None
    }
    results["targets"] = report.targets(results)
    results["meta"]["loadavg_end"] = os.getloadavg()[0]

    print(report.table(results))
    args.results_dir.mkdir(parents=True, exist_ok=True)
    stamp = results["meta"]["started_utc"].replace("-", "").replace(":", "")
    out = args.results_dir / f"{stamp}.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {out}")
    return 0


def _div(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b
