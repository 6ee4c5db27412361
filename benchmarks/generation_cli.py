"""``python -m benchmarks --only generate``: start the service once per scheduling policy, run the phases,
write a table and ``benchmarks/results/generate-<UTC stamp>.json``."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import generation
from benchmarks.server import Server, ServerError, free_port


def servers(args: argparse.Namespace) -> list[tuple[str, str, int, int, list[int]]]:
    """(label, scheduling policy, workers, lanes, client counts), in the order they run: continuous first,
    on a quiet machine, then the two baselines, then (optionally) continuous with several workers and with
    several lanes."""
    lanes = args.gen_lanes
    out = [("continuous", "continuous", args.gen_workers, lanes, list(args.gen_clients))]
    out += [
        (policy, policy, args.gen_workers, 1, [args.gen_baseline_clients])
        for policy in ("sequential", "static")
    ]
    if args.gen_compare_workers > 1:
        label = f"continuous_{args.gen_compare_workers}workers"
        out.append((label, "continuous", args.gen_compare_workers, lanes, [args.gen_baseline_clients]))
    if args.gen_compare_lanes > 0 and args.gen_compare_lanes != lanes:
        label = f"continuous_{args.gen_compare_lanes}lanes"
        out.append(
            (label, "continuous", args.gen_workers, args.gen_compare_lanes, [args.gen_baseline_clients])
        )
    return out


def _env(
    args: argparse.Namespace, repo: Path, port: int, policy: str, workers: int, lanes: int
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEQSERVE_")}
    env.update({
        "SEQSERVE_MODEL_REPOSITORY": str(repo), "SEQSERVE_HOST": "127.0.0.1", "SEQSERVE_PORT": str(port),
        "SEQSERVE_LOG_LEVEL": "warning", "SEQSERVE_WORKERS": str(workers),
        "SEQSERVE_GENERATION_SCHEDULING": policy, "SEQSERVE_GENERATION_LANES": str(lanes),
        # One ORT thread: the other core is left to the event loop and the load generator.
        "SEQSERVE_ORT_INTRA_OP_THREADS": str(args.gen_intra_op_threads),
        "SEQSERVE_MAX_STREAMS_PER_MODEL": str(max(128, max(args.gen_clients), args.gen_baseline_clients)),
        # The sequential baseline queues 63 streams behind the running one; its waits must not time out.
        "SEQSERVE_GENERATION_TIMEOUT_SECONDS": "600",
    })  # fmt: skip
    return env


def run(args: argparse.Namespace, meta: dict[str, Any]) -> int:
    workload = generation.Workload(
        args.gen_model, args.gen_tokens[0], args.gen_tokens[1], args.gen_temperature, args.gen_seed
    )
    results: dict[str, Any] = {
        "meta": {**meta, "benchmark": "generate", "workload": workload.__dict__, "workers": args.gen_workers,
                 "intra_op_threads": args.gen_intra_op_threads, "lanes": args.gen_lanes,
                 "duration_s": args.gen_duration,
                 "warmup_s": args.gen_warmup},
        "phases": {},
    }  # fmt: skip
    source = args.models / args.gen_model
    if not source.is_dir():
        print(f"{source} is missing", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="seqserve-bench-gen-") as tmp:
        work = Path(tmp)
        repo = work / "models"
        repo.mkdir()
        # Only the generation model: nothing else loads, warms up or takes memory.
        (repo / args.gen_model).symlink_to(source, target_is_directory=True)
        for label, policy, workers, lanes, client_counts in servers(args):
            port = free_port()
            argv = [sys.executable, "-m", "service"]
            env = _env(args, repo, port, policy, workers, lanes)
            server = Server(f"generate_{label}", argv, env, port, generation.log_path(work, label))
            print(f"starting the service: {label} ({workers} worker(s)) ...", file=sys.stderr, flush=True)
            try:
                server.start()
                status, answer = server.post_json(
                    "/v1/generate", json.dumps({"prompt": "ROMEO:\n", "max_new_tokens": 8, "seed": 1})
                )
                if status != 200:
                    raise ServerError(f"generate check failed: HTTP {status}: {str(answer)[:300]}")
                results["meta"]["served"] = answer["model"]
                for clients in client_counts:
                    key = f"{label}_c{clients}"
                    # The machine may be shared: its load and the server's own CPU use say how much.
                    load, cpu, wall = os.getloadavg()[0], server.cpu_seconds(), time.monotonic()
                    phase = generation.run_phase(
                        server.base_url, workload, clients, args.gen_warmup, args.gen_duration
                    )
                    busy = (server.cpu_seconds() - cpu) / (time.monotonic() - wall)
                    results["phases"][key] = {
                        "policy": policy,
                        "workers": workers,
                        "lanes": lanes,
                        **phase,
                        "loadavg_1m_start": load,
                        "server_cores_busy": round(busy, 2),
                    }
                results.setdefault("memory", {})[label] = server.memory()
            except ServerError as exc:
                results["phases"][f"{label}_error"] = {"error": str(exc)[-1500:]}
            finally:
                server.stop()
    generation.summarize(results)
    results["meta"]["loadavg_end"] = os.getloadavg()[0]
    print(generation.table(results))
    args.results_dir.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = args.results_dir / f"generate-{stamp}.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {out}")
    return 0
