"""Continuous batching against a real server process: texts do not change with load, the stream cap
answers 503 + Retry-After, and a client that hangs up frees its slot at once."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gen_helpers import GEN_MODEL, many_prompts, metric_value, model_repository, running_server, sse_json

MAX_STREAMS = 64
ACTIVE = "seqserve_generation_active_streams"
LABEL = f'model="{GEN_MODEL}"'


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("batching")
    settings = {"max_streams_per_model": str(MAX_STREAMS)}
    with running_server(model_repository(tmp, GEN_MODEL), tmp / "server.log", **settings) as url:
        yield url


def _requests() -> list[dict[str, Any]]:
    """64 generations: half greedy, half seeded sampling, different lengths so streams leave at different
    steps and the batch keeps changing while the others run. Two prompts are long (300 and 700 characters):
    under load they are fed in prefill chunks and then as batch rows, alone in prefill chunks only."""
    out = []
    prompts = many_prompts(MAX_STREAMS)
    prompts[5] = ("To be, or not to be, that is the question:\n" * 20)[:300]
    prompts[6] = ("Now is the winter of our discontent\nMade glorious summer by the sun of York;\n" * 9)[:700]
    for i, prompt in enumerate(prompts):
        sampling = {"temperature": 0} if i % 2 == 0 else {"temperature": 0.9, "top_k": 30, "seed": 1000 + i}
        out.append({"prompt": prompt, "max_new_tokens": 24 + (i % 5) * 12, **sampling})
    return out


def _alone(base: str, requests: list[dict[str, Any]]) -> list[str]:
    with httpx.Client(base_url=base, timeout=120) as client:
        texts = []
        for body in requests:
            response = client.post("/v1/generate", json=body)
            assert response.status_code == 200, response.text
            texts.append(str(response.json()["text"]))
        return texts


def _dechunk(body: bytes) -> bytes:
    out, rest = b"", body
    while True:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return out
        out, rest = out + rest[:size], rest[size + 2 :]


async def _together(base: str, requests: list[dict[str, Any]]) -> list[str]:
    """All requests on their own connections, released at once: each body's last byte is held back until
    every connection has sent the rest, so all 64 arrive within a few milliseconds and share decode steps."""
    host, port = base.removeprefix("http://").split(":")
    streams = []
    for i, body in enumerate(requests):
        stream = i % 3 == 0  # a third streamed (SSE), the rest plain JSON
        payload = json.dumps({**body, "stream": stream}).encode()
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            f"POST /v1/generate HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
            + payload[:-1]
        )
        await writer.drain()
        streams.append((reader, writer, payload[-1:], stream))
    for _, writer, last, _ in streams:
        writer.write(last)

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stream: bool) -> str:
        raw = await reader.read()
        writer.close()
        head, _, body = raw.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), raw[:300]
        if not stream:
            return str(json.loads(body)["text"])
        events = sse_json(_dechunk(body).decode())
        assert events[-1]["finish_reason"] == "length"
        return "".join(e["text"] for e in events)

    return list(await asyncio.gather(*(answer(r, w, s) for r, w, _, s in streams)))


def test_texts_are_identical_alone_and_beside_63_other_streams(base: str) -> None:
    requests = _requests()
    alone = _alone(base, requests)
    before = httpx.get(f"{base}/metrics").text
    together = asyncio.run(_together(base, requests))
    after = httpx.get(f"{base}/metrics").text
    assert together == alone
    assert all(len(text) == body["max_new_tokens"] for text, body in zip(alone, requests, strict=True))
    # The comparison means something only if streams really shared decode steps: many steps ran more
    # than 32 streams at once (count minus the le="32" bucket, during the concurrent phase only).
    name = "seqserve_generation_streams_per_step"

    def steps(text: str, suffix: str, labels: str = LABEL) -> float:
        return metric_value(text, f"{name}_{suffix}", labels)

    large = steps(after, "count") - steps(before, "count")
    large -= steps(after, "bucket", f'le="32.0",{LABEL}') - steps(before, "bucket", f'le="32.0",{LABEL}')
    assert large >= 10, large


def test_two_lanes_split_the_streams_and_change_no_text(tmp_path: Path) -> None:
    """SEQSERVE_GENERATION_LANES=2: two continuous batches of one model, each on its own thread."""
    requests = _requests()
    repo = model_repository(tmp_path, GEN_MODEL)
    settings = {"max_streams_per_model": str(MAX_STREAMS), "generation_lanes": "2"}
    with running_server(repo, tmp_path / "server.log", **settings) as url:
        alone = _alone(url, requests)
        together = asyncio.run(_together(url, requests))
        after = httpx.get(f"{url}/metrics").text
    assert together == alone
    name = "seqserve_generation_streams_per_step"
    count = metric_value(after, f"{name}_count", LABEL)
    # New streams join the emptier lane, so no step ran more than half of the 64; many ran over 16.
    assert metric_value(after, f"{name}_bucket", f'le="32.0",{LABEL}') == count
    assert count - metric_value(after, f"{name}_bucket", f'le="16.0",{LABEL}') >= 10


def _open_stream(base: str, body: dict[str, Any]) -> socket.socket:
    """A raw HTTP client that starts a streamed generation and waits for its first event."""
    host, port = base.removeprefix("http://").split(":")
    payload = json.dumps({**body, "stream": True}).encode()
    sock = socket.create_connection((host, int(port)), timeout=30)
    head = (f"POST /v1/generate HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n").encode()  # fmt: skip
    sock.sendall(head + payload)
    received = b""
    while b"data: " not in received:
        chunk = sock.recv(65536)
        assert chunk, received
        received += chunk
    assert received.startswith(b"HTTP/1.1 200"), received[:200]
    return sock


def _active(base: str) -> float:
    return metric_value(httpx.get(f"{base}/metrics").text, ACTIVE, LABEL)


def _wait_for_active(base: str, want: float) -> None:
    deadline = time.monotonic() + 15
    while (seen := _active(base)) != want:
        assert time.monotonic() < deadline, f"active streams stayed at {seen}, expected {want}"
        time.sleep(0.02)


def test_the_stream_cap_answers_503_and_a_client_that_hangs_up_frees_its_slot(base: str) -> None:
    long_body = {"prompt": "ROMEO:\n", "max_new_tokens": 2000, "temperature": 0.8}
    sockets = [_open_stream(base, long_body) for _ in range(MAX_STREAMS)]
    try:
        assert _active(base) == MAX_STREAMS
        refused = httpx.post(f"{base}/v1/generate", json={"prompt": "A", "max_new_tokens": 4}, timeout=30)
        assert refused.status_code == 503 and refused.json()["error"]["type"] == "overloaded"
        assert int(refused.headers["retry-after"]) >= 1
        # One client hangs up mid-stream: its slot is free for the next request right away.
        sockets.pop().close()
        _wait_for_active(base, MAX_STREAMS - 1)
        admitted = httpx.post(f"{base}/v1/generate", json={"prompt": "A", "max_new_tokens": 4}, timeout=30)
        assert admitted.status_code == 200, admitted.text
    finally:
        for sock in sockets:
            sock.close()
    _wait_for_active(base, 0)
    # Cancelled generations stop generating: the token counter stands still once all clients are gone.
    tokens = "seqserve_generated_tokens_total"
    first = metric_value(httpx.get(f"{base}/metrics").text, tokens, LABEL)
    time.sleep(0.3)
    assert metric_value(httpx.get(f"{base}/metrics").text, tokens, LABEL) == first


def test_a_non_streaming_client_that_hangs_up_frees_its_slot(base: str) -> None:
    host, port = base.removeprefix("http://").split(":")
    payload = json.dumps({"prompt": "ROMEO:\n", "max_new_tokens": 2000, "temperature": 0}).encode()
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(
            f"POST /v1/generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n".encode()
            + payload
        )
        _wait_for_active(base, 1)
    _wait_for_active(base, 0)


def test_unloading_the_model_lets_running_streams_finish_first(base: str) -> None:
    sock = _open_stream(base, {"prompt": "ROMEO:\n", "max_new_tokens": 400, "temperature": 0})
    try:
        # The unload answers only once the model has no stream in flight (it drains them).
        unloaded = httpx.post(f"{base}/v2/repository/models/{GEN_MODEL}/unload", timeout=60)
        assert unloaded.status_code == 200, unloaded.text
        assert _active(base) == 0  # the stream had finished when the unload answered
        sock.settimeout(0.5)
        received = b""
        while b'"finish_reason":"length"' not in received:
            chunk = sock.recv(65536)  # already sent: a timeout here means the stream was cut
            assert chunk, received[-300:]
            received += chunk
        assert b'"tokens":400' in received
    finally:
        sock.close()
    refused = httpx.post(f"{base}/v1/generate", json={"prompt": "A", "max_new_tokens": 2})
    assert refused.status_code == 503
    loaded = httpx.post(f"{base}/v2/repository/models/{GEN_MODEL}/load", timeout=60)
    assert loaded.status_code == 200, loaded.text
    again = httpx.post(f"{base}/v1/generate", json={"prompt": "A", "max_new_tokens": 2})
    assert again.status_code == 200, again.text
