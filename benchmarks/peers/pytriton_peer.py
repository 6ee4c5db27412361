"""PyTriton (Triton's dynamic batcher) as a peer: own venv, same ONNX file, same series, V2 JSON.

``bin/bench --peers pytriton`` creates ``<peers-dir>/pytriton-venv`` once (nvidia-pytriton carries
Triton's server binary in its wheel), starts benchmarks/peers/pytriton_server.py there with the layout
a user would pick on this machine (2 model instances x 1 ORT intra-op thread, max batch 64, 2 ms
queue delay), checks one answer against seqserve's, then drives it with wrk at the same concurrencies
with V2 JSON bodies carrying the same M4 rows as the /v1 bodies.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import loadgen
from benchmarks.server import Server, ServerError, free_port

REQUIREMENTS = ["nvidia-pytriton==0.7.0", "onnxruntime==1.31.1", "numpy"]
SERVER_SCRIPT = Path(__file__).resolve().parent / "pytriton_server.py"
# One answer must match seqserve's to this absolute tolerance (same ORT version, same graph).
TOLERANCE = 1e-4


def ensure_venv(peers_dir: Path) -> Path:
    """The peer's interpreter, installing it the first time (or when the pinned set changed)."""
    venv = peers_dir / "pytriton-venv"
    python = venv / "bin" / "python"
    marker = venv / "seqserve-requirements.txt"
    wanted = "\n".join(REQUIREMENTS) + "\n"
    if python.exists() and marker.exists() and marker.read_text() == wanted:
        return python
    print(f"installing PyTriton into {venv} (once) ...", file=sys.stderr, flush=True)
    peers_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, *REQUIREMENTS], check=True)
    marker.write_text(wanted)
    return python


def quantiles_from_v2(answer: Any) -> np.ndarray:
    """[rows, horizon, Q] from a V2 JSON answer's ``quantiles`` output."""
    (out,) = [o for o in answer["outputs"] if o["name"] == "quantiles"]
    return np.asarray(out["data"], dtype=np.float64).reshape(out["shape"])


def compare_with_seqserve(triton: np.ndarray, seqserve_forecast: dict[str, Any]) -> float:
    """Largest absolute difference over every quantile of the first series."""
    keys = sorted(seqserve_forecast["quantiles"], key=float)
    ours = np.stack([np.asarray(seqserve_forecast["quantiles"][k], dtype=np.float64) for k in keys], axis=-1)
    return float(np.max(np.abs(triton[0, : ours.shape[0], :] - ours)))


def run(
    args: argparse.Namespace, results: dict[str, Any], work: Path, bodies: Path, model_path: Path
) -> None:
    try:
        python = ensure_venv(args.peers_dir)
    except (subprocess.CalledProcessError, OSError) as exc:
        results["phases"]["pytriton_error"] = {"label": "pytriton", "error": f"install failed: {exc}"}
        return
    results["peers"]["pytriton"] = {"requirements": REQUIREMENTS}
    path = f"/v2/models/{args.forecaster}/infer"
    server = _started(python, args, model_path, work, results["peers"]["pytriton"])
    if server is None:
        results["phases"]["pytriton_error"] = {
            "label": "pytriton", "error": results["peers"]["pytriton"]["start_errors"][-1]
        }  # fmt: skip
        return
    try:
        status, answer = server.post_json(path, bodies.read_text().splitlines()[0])
        if status != 200 or not isinstance(answer, dict):
            raise ServerError(f"pytriton check failed: HTTP {status}: {str(answer)[:500]}")
        check = results.get("checks", {}).get("forecast")
        if check is not None:
            diff = compare_with_seqserve(quantiles_from_v2(answer), check)
            results["peers"]["pytriton"]["max_abs_diff_vs_seqserve"] = diff
            if not diff <= TOLERANCE:
                raise ServerError(f"pytriton answers differ from seqserve's by {diff} (> {TOLERANCE})")
        else:
            results["peers"]["pytriton"]["max_abs_diff_vs_seqserve"] = "not compared: no seqserve answer"
        if args.warmup:
            loadgen.run_wrk(server.base_url, path, bodies, 16, args.warmup, 1)
        for c in args.connections:
            key, label = f"pytriton_c{c}", "1 series/req, PyTriton V2 JSON"
            print(f"{label}, {c} connections ...", file=sys.stderr, flush=True)
            try:
                r = loadgen.run_wrk(server.base_url, path, bodies, c, args.duration, 1, server.cpu_seconds)
            except loadgen.LoadGenError as exc:
                results["phases"][key] = {"label": label, "connections": c, "error": str(exc)}
                continue
            results["phases"][key] = {"label": label, "server": server.name, **r}
        results["memory"]["pytriton"] = server.memory()
    except ServerError as exc:
        results["phases"]["pytriton_error"] = {"label": "pytriton", "error": str(exc)[-1500:]}
    finally:
        server.stop()


# PyTriton 0.7 sometimes fails its own start-up: the model's stub process connects to the handshake socket
# before the proxy listens ("ConnectionRefusedError" in model.py's initialize). A fresh start usually works.
START_ATTEMPTS = 2


def _started(
    python: Path, args: argparse.Namespace, model_path: Path, work: Path, record: dict[str, Any]
) -> Server | None:
    """Start PyTriton, once more if its start fails; None when every attempt failed (errors in ``record``)."""
    errors: list[str] = []
    for attempt in range(1, START_ATTEMPTS + 1):
        port, grpc, metrics = free_port(), free_port(), free_port()
        argv = [str(python), str(SERVER_SCRIPT), str(model_path), "--name", args.forecaster]
        argv += ["--instances", str(args.peer_instances), "--threads", "1", "--max-batch", "64"]
        argv += ["--max-queue-delay-us", "2000", "--http-port", str(port), "--grpc-port", str(grpc)]
        argv += ["--metrics-port", str(metrics)]
        # The peer's own interpreter: nothing of the project's venv or settings may leak into it.
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("SEQSERVE_", "PYTHON", "VIRTUAL_ENV"))
        }
        server = Server("pytriton", argv, env, port, work / f"pytriton-{attempt}.log")
        record |= {"argv": argv[1:], "start_attempts": attempt, "start_errors": errors}
        print(f"starting PyTriton (attempt {attempt}) ...", file=sys.stderr, flush=True)
        try:
            server.start(ready_path=f"/v2/models/{args.forecaster}/ready", timeout_s=300)
            return server
        except ServerError as exc:
            errors.append(str(exc)[-1500:])
            server.stop()
    return None
