"""One SO_REUSEPORT listener per worker: the placeholder, the binding, and the real two-worker server."""

from __future__ import annotations

import io
import os
import pickle
import socket
import subprocess
from multiprocessing.reduction import ForkingPickler
from pathlib import Path

import pytest
from svc_helpers import launched_service

from service.http.listeners import (
    REUSE_PORT_SUPPORTED,
    ReusePortPlaceholder,
    bind_reuse_port,
    check_port_free,
)

pytestmark = pytest.mark.skipif(not REUSE_PORT_SUPPORTED, reason="the platform has no SO_REUSEPORT")

CONNECTIONS = 64


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _through_spawn_pickler(obj: object) -> object:
    # What multiprocessing does to a spawned worker's arguments.
    buffer = io.BytesIO()
    ForkingPickler(buffer).dump(obj)
    return pickle.loads(buffer.getvalue())


def test_placeholder_becomes_a_fresh_socket_bound_with_reuse_port_and_not_listening() -> None:
    port = _free_port()
    placeholder = ReusePortPlaceholder("127.0.0.1", port)
    try:
        first = _through_spawn_pickler(placeholder)
        second = _through_spawn_pickler(placeholder)
        assert isinstance(first, socket.socket) and isinstance(second, socket.socket)
        with first, second:
            assert first.fileno() != second.fileno() != placeholder.fileno()
            for sock in (first, second):
                assert sock.getsockname() == ("127.0.0.1", port)
                assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 1
                assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 0
            # Both may listen on the same port: that is the point.
            first.listen()
            second.listen()
    finally:
        placeholder.close()


def test_a_plain_listener_on_the_port_is_reported_before_workers_start() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError):
            check_port_free("127.0.0.1", port)
        with pytest.raises(OSError):
            bind_reuse_port("127.0.0.1", port)
    check_port_free("127.0.0.1", port)


def _inodes(port: int, state: str) -> set[str]:
    """Inodes of IPv4 TCP sockets whose local port is ``port``, in a /proc/net/tcp state."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == state and int(fields[1].split(":")[1], 16) == port:
            inodes.add(fields[9])
    return inodes


def _listening_inodes(port: int) -> set[str]:
    return _inodes(port, "0A")


def _established_inodes(port: int) -> set[str]:
    return _inodes(port, "01")


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    return inodes


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False).stdout
    return [int(p) for p in out.split()]


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc")
def test_two_workers_each_listen_on_their_own_socket_and_both_serve(tmp_path: Path) -> None:
    port = _free_port()
    env = {"SEQSERVE_LOG_LEVEL": "info", "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")}
    with launched_service(tmp_path, port, 2, env) as (proc, log_path):
        workers = [p for p in _children(proc.pid) if _socket_inodes(p) & _listening_inodes(port)]
        listeners = _listening_inodes(port)
        # Two listening sockets on the port, one in each worker, none shared and none in the supervisor.
        assert len(listeners) == 2, listeners
        assert len(workers) == 2, (workers, listeners)
        owned = [_socket_inodes(p) & listeners for p in workers]
        assert all(len(mine) == 1 for mine in owned) and owned[0] != owned[1]
        assert not _socket_inodes(proc.pid) & listeners

        # Many keep-alive connections opened at once, as a load generator does: every one is answered,
        # and both workers hold a share (the kernel hashes each connection's ports to a listener).
        clients = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(CONNECTIONS)]
        try:
            for client in clients:
                client.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
            for client in clients:
                assert client.recv(65536).startswith(b"HTTP/1.1 200"), "no answer"
            served = {pid: len(_socket_inodes(pid) & _established_inodes(port)) for pid in workers}
        finally:
            for client in clients:
                client.close()
        assert sum(served.values()) == CONNECTIONS, served
        assert all(count > 0 for count in served.values()), served
    assert "Traceback" not in log_path.read_text(), log_path.read_text()
