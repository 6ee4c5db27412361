"""One write per response: the transport wrapper on its own, then the real server over raw sockets."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from svc_helpers import REPO, launched_service

from service.http.protocol import CoalescingTransport


class RecordingTransport(asyncio.Transport):
    """Stands in for the socket: records what reaches it, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, Any]] = []

    def write(self, data: Any) -> None:
        self.calls.append(("write", bytes(data)))

    def close(self) -> None:
        self.calls.append(("close", None))

    def abort(self) -> None:
        self.calls.append(("abort", None))

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 1234) if name == "peername" else default


def test_writes_of_one_loop_step_leave_as_one_and_later_writes_separately() -> None:
    async def scenario() -> RecordingTransport:
        raw = RecordingTransport()
        wrapped = CoalescingTransport(raw, asyncio.get_running_loop())
        wrapped.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
        wrapped.write(b"{}")
        assert raw.calls == []  # nothing sent inside the step
        assert wrapped.get_write_buffer_size() == len(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")
        await asyncio.sleep(0)
        wrapped.write(b"next")
        await asyncio.sleep(0)
        assert wrapped.get_extra_info("peername") == ("127.0.0.1", 1234)
        return raw

    raw = asyncio.run(scenario())
    assert raw.calls == [("write", b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"), ("write", b"next")]


def test_close_sends_what_is_pending_first_and_abort_drops_it() -> None:
    async def scenario() -> tuple[RecordingTransport, RecordingTransport]:
        loop = asyncio.get_running_loop()
        closed, aborted = RecordingTransport(), RecordingTransport()
        first, second = CoalescingTransport(closed, loop), CoalescingTransport(aborted, loop)
        first.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        first.close()
        second.write(b"partial")
        second.abort()
        await asyncio.sleep(0)  # the scheduled flushes find nothing left
        return closed, aborted

    closed, aborted = asyncio.run(scenario())
    assert closed.calls == [("write", b"HTTP/1.1 400 Bad Request\r\n\r\n"), ("close", None)]
    assert aborted.calls == [("abort", None)]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """``python -m service`` exactly as deployed (one worker, empty model repository)."""
    tmp = tmp_path_factory.mktemp("protocol")
    (tmp / "models").mkdir()
    port = _free_port()
    env = {**os.environ, "SEQSERVE_PORT": str(port), "SEQSERVE_HOST": "127.0.0.1", "SEQSERVE_WORKERS": "1",
           "SEQSERVE_MODEL_REPOSITORY": str(tmp / "models")}  # fmt: skip
    log_path: Path = tmp / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "service"], cwd=REPO, env=env, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 60
        while "Application startup complete." not in log_path.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
        yield port
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log_path.read_text()


def _read_until_closed(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_pipelined_keep_alive_requests_are_answered_in_order(server: int) -> None:
    with socket.create_connection(("127.0.0.1", server), timeout=10) as sock:
        request = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"
        sock.sendall(request * 2 + b"GET /nope HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        data = _read_until_closed(sock)
    assert data.count(b"HTTP/1.1 200 OK") == 2
    assert data.rindex(b"HTTP/1.1 200 OK") < data.index(b"HTTP/1.1 404 Not Found")
    assert data.count(b'{"status":"ok"}') == 2
    assert b"server: uvicorn" not in data.lower() and b"date: " in data.lower()


def test_an_unparseable_request_still_gets_its_400_before_the_close(server: int) -> None:
    with socket.create_connection(("127.0.0.1", server), timeout=10) as sock:
        sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        data = _read_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 400 Bad Request"), data


@pytest.mark.parametrize(("operator_value", "expected"), [(None, "false"), ("true", "true")])
def test_workers_run_the_tokenizers_without_their_spinning_thread_pool(
    tmp_path: Path, operator_value: str | None, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TOKENIZERS_PARALLELISM", raising=False)
    env = {} if operator_value is None else {"TOKENIZERS_PARALLELISM": operator_value}
    with launched_service(tmp_path, _free_port(), 2, env) as (proc, _):
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        workers = [pid for pid in children if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]
        assert len(workers) == 2
        for pid in workers:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            assert f"TOKENIZERS_PARALLELISM={expected}".encode() in environ
