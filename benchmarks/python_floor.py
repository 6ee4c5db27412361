"""The floor of a Python request path: how near any Python server gets to the layout ceiling here.

Issue 12's target 1 divides seqserve's rows/s at 64 connections by the N x 1 layout ceiling, where each
process does nothing but ``session.run``. This module measures what a Python server that does almost
nothing else reaches on the same machine, model and bodies: uvloop, httptools' parser, ``orjson`` in and
out, and one batch thread per worker that runs the queued rows in parts of the manifest's preferred
size (as the service does), handing results back with one ``call_soon_threadsafe`` per batch. It has no
validation beyond what a float32 conversion refuses, no metrics, no auth, no limits, no timeouts, no
error responses and no routing: **it is not a server to deploy**, only the bound that such features
cost against.

``python -m benchmarks.python_floor --rounds 4 --duration 8`` starts seqserve (``python -m service``,
2 workers) and the floor (2 forked workers on one SO_REUSEPORT port), checks that both give the same
forecast for a body, measures the layout ceiling before and after, and loads each server in turn (A/B
interleaved rounds) with wrk. It prints rows/s, p99 and server CPU per request, and the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import queue
import socket
import statistics
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import httptools
import numpy as np
import orjson
import uvloop

from benchmarks import layout_ceiling, loadgen, payloads
from benchmarks.ceiling import session
from benchmarks.server import Server, free_port

REPO_ROOT = Path(__file__).resolve().parent.parent
_OK = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
Reply = Callable[[np.ndarray[Any, Any]], None]


class _BatchThread:
    """Rows queued by the loop run together in this thread; one loop callback answers the batch."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, model: Path, input_name: str, rows_per_run: int
    ) -> None:
        self._loop, self._input, self._step = loop, input_name, rows_per_run
        self._session = session(model, 1)
        self.queue: queue.SimpleQueue[tuple[np.ndarray[Any, Any], Reply]] = queue.SimpleQueue()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while True:
            items = [self.queue.get()]
            while True:
                try:
                    items.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            rows = np.stack([row for row, _ in items])
            parts = [
                self._session.run(None, {self._input: rows[s : s + self._step]})[0]
                for s in range(0, len(rows), self._step)
            ]
            self._loop.call_soon_threadsafe(_deliver, items, np.concatenate(parts))


def _deliver(items: list[tuple[np.ndarray[Any, Any], Reply]], out: np.ndarray[Any, Any]) -> None:
    for (_, reply), forecast in zip(items, out, strict=True):
        reply(forecast)


class _FloorProtocol(asyncio.Protocol):
    def __init__(self, batches: _BatchThread, manifest: dict[str, Any]) -> None:
        self._batches = batches
        self._parser = httptools.HttpRequestParser(self)
        self._body: list[bytes] = []
        self._model = {"name": manifest["name"], "version": manifest["version"]}
        params = manifest["parameters"]
        self._context = int(params["context_length"])
        self._keys = [repr(float(q)) for q in params["quantiles"]]
        self._median = params["quantiles"].index(0.5)
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            assert self._transport is not None
            self._transport.close()

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        if self._parser.get_method() != b"POST":  # the harness's readiness probe
            self._write(b'"ok"')
            return
        request = orjson.loads(b"".join(self._body))
        self._body = []
        series = request["series"][0]
        row = np.asarray(series["values"], dtype=np.float32)[-self._context :]
        self._batches.queue.put((row, lambda out: self._reply(series.get("id"), len(row), out)))

    def _reply(self, series_id: str | None, used: int, out: np.ndarray[Any, Any]) -> None:
        by_quantile = np.ascontiguousarray(out.T)
        forecast = {"id": series_id, "point": by_quantile[self._median],
                    "quantiles": {k: by_quantile[i] for i, k in enumerate(self._keys)},
                    "context_length_used": used}  # fmt: skip
        body = {"model": self._model, "forecasts": [forecast]}
        self._write(orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY))

    def _write(self, body: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(_OK % len(body) + body)


def _worker(port: int, version_dir: Path) -> None:
    manifest = json.loads((version_dir / "model.json").read_text())
    uvloop.install()
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(1024)
    step = int(manifest.get("serving", {}).get("preferred_batch_size") or 64)
    batches = _BatchThread(loop, version_dir / "model.onnx", manifest["inputs"][0]["name"], step)
    loop.run_until_complete(loop.create_server(lambda: _FloorProtocol(batches, manifest), sock=sock))
    loop.run_forever()


def serve(port: int, version_dir: Path, workers: int) -> None:
    children = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:
            _worker(port, version_dir)
            os._exit(0)
        children.append(pid)
    for pid in children:
        os.waitpid(pid, 0)


def _same_forecast(a: dict[str, Any], b: dict[str, Any]) -> float:
    fa, fb = a["forecasts"][0], b["forecasts"][0]
    if (
        fa["quantiles"].keys() != fb["quantiles"].keys()
        or fa["context_length_used"] != fb["context_length_used"]
    ):
        raise SystemExit(f"the floor's answer differs in shape from seqserve's: {fa.keys()} / {fb.keys()}")
    return max(
        float(np.max(np.abs(np.subtract(fa["quantiles"][k], fb["quantiles"][k])))) for k in fa["quantiles"]
    )


def compare(args: argparse.Namespace) -> int:
    version_dir = args.models / "m4-hourly" / "1"
    contexts = payloads.load_m4_series(336)
    with tempfile.TemporaryDirectory(prefix="seqserve-floor-") as tmp:
        work = Path(tmp)
        bodies = payloads.write_lines(work / "bodies.jsonl", payloads.forecast_bodies(336, 1, 64))
        first = bodies.read_text().splitlines()[0]
        env = {k: v for k, v in os.environ.items() if not k.startswith("SEQSERVE_")}
        ports = {"seqserve": free_port(), "floor": free_port()}
        env |= {"SEQSERVE_MODEL_REPOSITORY": str(args.models), "SEQSERVE_PORT": str(ports["seqserve"]),
                "SEQSERVE_HOST": "127.0.0.1", "SEQSERVE_WORKERS": str(args.workers),
                "SEQSERVE_LOG_LEVEL": "warning"}  # fmt: skip
        floor = ["serve", "--port", str(ports["floor"]), "--version-dir", str(version_dir),
                 "--workers", str(args.workers)]  # fmt: skip
        argv = {"seqserve": [sys.executable, "-m", "service"],
                "floor": [sys.executable, "-m", "benchmarks.python_floor", *floor]}  # fmt: skip
        servers = {name: Server(name, argv[name], env, ports[name], work / f"{name}.log") for name in argv}
        try:
            for server in servers.values():
                server.start()
            answers = {name: server.post_json("/v1/forecast", first) for name, server in servers.items()}
            if any(status != 200 for status, _ in answers.values()):
                raise SystemExit(f"a check request failed: {answers}")
            diff = _same_forecast(answers["seqserve"][1], answers["floor"][1])
            print(f"max |floor - seqserve| over every quantile of the check request: {diff:.1e}")
            if diff > 1e-4:
                raise SystemExit("the floor does not compute what seqserve computes")
            ceilings = [_ceiling(version_dir, contexts, args)]
            print(f"layout ceiling before: {ceilings[0]:,.0f} rows/s", flush=True)
            for server in servers.values():
                loadgen.run_wrk(server.base_url, "/v1/forecast", bodies, 16, 1, 1)
            results: dict[str, list[dict[str, float]]] = {name: [] for name in servers}
            for i in range(args.rounds):
                for name in ("seqserve", "floor") if i % 2 == 0 else ("floor", "seqserve"):
                    server = servers[name]
                    r = loadgen.run_wrk(server.base_url, "/v1/forecast", bodies, args.connections,
                                        args.duration, 1, server.cpu_seconds)  # fmt: skip
                    row = {"rows_per_s": r["rows_per_s"], "p99": r["latency_ms"]["p99"],
                           "cpu_ms": 1000 * r["server_cpu_seconds"] / max(1, r["requests"]),
                           "errors": r["error_count"]}  # fmt: skip
                    results[name].append(row)
                    print(f"round {i + 1} {name:<8} {_cells(row)}  errors {row['errors']:.0f}", flush=True)
            ceilings.append(_ceiling(version_dir, contexts, args))
            print(f"layout ceiling after: {ceilings[1]:,.0f} rows/s")
        finally:
            for server in servers.values():
                server.stop()
    ceiling = statistics.mean(ceilings)
    med = {n: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for n, rs in results.items()}
    for name, m in med.items():
        print(f"median {name:<8} {_cells(m)}  / layout ceiling {m['rows_per_s'] / ceiling:.3f}")
    print(
        f"seqserve / floor: rows/s {med['seqserve']['rows_per_s'] / med['floor']['rows_per_s']:.3f}, "
        f"cpu per request {med['seqserve']['cpu_ms'] / med['floor']['cpu_ms']:.3f}"
    )
    return 0


def _cells(row: dict[str, float]) -> str:
    return f"{row['rows_per_s']:7.0f} rows/s  p99 {row['p99']:5.1f} ms  cpu {row['cpu_ms']:.3f} core-ms/req"


def _ceiling(version_dir: Path, contexts: np.ndarray[Any, Any], args: argparse.Namespace) -> float:
    r = layout_ceiling.measure_processes(
        version_dir / "model.onnx", contexts, [4, 16], 4.0, args.workers, rounds=4
    )
    return float(r["rows_per_s"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.python_floor")
    sub = p.add_subparsers(dest="command")
    s = sub.add_parser("serve", help="run the floor server alone")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--version-dir", type=Path, default=REPO_ROOT / "models" / "m4-hourly" / "1")
    s.add_argument("--workers", type=int, default=2)
    p.add_argument("--models", type=Path, default=REPO_ROOT / "models")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--duration", type=int, default=8)
    p.add_argument("--connections", type=int, default=64)
    args = p.parse_args(argv)
    if args.command == "serve":
        serve(args.port, args.version_dir, args.workers)
        return 0
    args.models = args.models.resolve()
    return compare(args)


if __name__ == "__main__":
    raise SystemExit(main())
