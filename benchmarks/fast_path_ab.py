"""CPU per request of a /v1 route with and without its fast body path, in process, without HTTP.

``python -m benchmarks.fast_path_ab`` drives the ASGI app directly (no server, no client library), so
what is left is the route: middleware, routing, body parsing and validation, the domain call and the
response. The same bytes are sent as ``application/json`` (the fast path) and as
``application/vnd.seqserve+json`` (FastAPI's path: it parses any ``+json`` type; the fast path does
not), in interleaved rounds, and the process CPU time per request of each is printed.

``--refused`` sends bodies valid for the schema but refused by the task before inference (a forecast
``horizon: 999``; a whitespace-only text), a 422 from the task, so the numbers hold no ``session.run``
and only the request path remains. That isolates what the fast path changes; without it ORT's cost
and its noise dominate.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from benchmarks import payloads

TYPES = {"fast": b"application/json", "slow": b"application/vnd.seqserve+json"}


async def _call(app: Any, state: dict[str, Any], path: str, body: bytes, ctype: bytes) -> int:
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(b"host", b"bench"), (b"content-type", ctype),
                         (b"content-length", str(len(body)).encode())],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80), "state": state}  # fmt: skip
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    status = 0

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def _start(app: Any, state: dict[str, Any]) -> None:
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await inbox.put({"type": "lifespan.startup"})
    receive: Callable[[], Awaitable[dict[str, Any]]] = inbox.get
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": state}
    asyncio.get_running_loop().create_task(app(scope, receive, outbox.put))
    message = await outbox.get()
    if message["type"] != "lifespan.startup.complete":
        raise SystemExit(f"startup failed: {message}")


async def run(args: argparse.Namespace) -> None:
    from service.app import create_app
    from service.config import Settings

    if args.path == "/v1/forecast":
        bodies = payloads.forecast_bodies(336, 1, 64)
        if args.refused:
            bodies = [json.dumps({**json.loads(b), "horizon": 999}) for b in bodies]
    else:
        bodies = payloads.sentiment_bodies(64)
        if args.refused:  # whitespace only: refused by the task before tokenizing
            bodies = [json.dumps({"texts": [" " * (len(json.loads(b)["texts"][0]))]}) for b in bodies]
    raw = [b.encode() for b in bodies]
    expected = 422 if args.refused else 200
    app, state = create_app(Settings()), {}
    await _start(app, state)
    for i in range(100):  # warm-up, both paths
        for ctype in TYPES.values():
            await _call(app, state, args.path, raw[i % len(raw)], ctype)
    per_request: dict[str, list[float]] = {"fast": [], "slow": []}
    for r in range(args.rounds):
        for name in ("fast", "slow") if r % 2 == 0 else ("slow", "fast"):
            started = time.process_time()
            for i in range(args.requests):
                status = await _call(app, state, args.path, raw[i % len(raw)], TYPES[name])
                if status != expected:
                    raise SystemExit(f"{name}: HTTP {status}, expected {expected}")
            per_request[name].append(1000.0 * (time.process_time() - started) / args.requests)
    for name, values in per_request.items():
        print(f"{name}: median {statistics.median(values):.3f} ms CPU/request"
              f" (rounds {min(values):.3f}-{max(values):.3f})")  # fmt: skip
    pairs = [f - s for f, s in zip(per_request["fast"], per_request["slow"], strict=True)]
    print(f"fast - slow, median over rounds: {statistics.median(pairs):+.3f} ms")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.fast_path_ab", description=__doc__)
    p.add_argument("--path", default="/v1/forecast", choices=["/v1/forecast", "/v1/sentiment"])
    p.add_argument("--refused", action="store_true", help="bodies the task refuses (no ORT)")
    p.add_argument("--rounds", type=int, default=16)
    p.add_argument("--requests", type=int, default=200, help="per round and path")
    asyncio.run(run(p.parse_args(argv)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
