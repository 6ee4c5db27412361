"""A real HAProxy (Debian's) on loopback in front of seqserve replicas, health-checking /readyz.

Server slots are fixed in the config and start disabled; ``enable``/``disable`` go through HAProxy's
runtime API, as endpoints are added and removed for a Kubernetes Service. Taking a replica out of
rotation while it shuts down is left to its readiness check alone (``inter``/``fall`` below), as a
Service's readiness probe would.
"""

from __future__ import annotations

import csv
import io
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

CONFIG = """\
global
    maxconn 512
    stats socket {socket} mode 600 level admin
defaults
    mode http
    timeout connect 2s
    timeout client 120s
    timeout server 120s
    timeout check 2s
    # Connection failures only (HAProxy's default retry-on), and to another server: a request HAProxy
    # could not deliver at all. Responses are never retried. The counts are reported by the test.
    retries 3
    option redispatch
frontend seqserve
    bind 127.0.0.1:{port}
    default_backend replicas
backend replicas
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
    default-server check inter 250ms fall 2 rise 1
{servers}
"""


class HAProxy:
    def __init__(self, workdir: Path, port: int, slot_ports: list[int]) -> None:
        binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
        if not Path(binary).exists():
            pytest.fail("haproxy is not installed; bin/test installs Debian's haproxy package")
        self.port = port
        self.socket_path = workdir / "haproxy.sock"
        self.slots = {f"s{i}": p for i, p in enumerate(slot_ports)}
        servers = "\n".join(f"    server {name} 127.0.0.1:{p} disabled" for name, p in self.slots.items())
        config = workdir / "haproxy.cfg"
        config.write_text(CONFIG.format(socket=self.socket_path, port=port, servers=servers))
        subprocess.run([binary, "-c", "-q", "-f", str(config)], check=True)
        self.log = workdir / "haproxy.log"
        with self.log.open("wb") as handle:
            self.proc = subprocess.Popen([binary, "-db", "-f", str(config)], stdout=handle, stderr=handle)
        deadline = time.monotonic() + 10
        while not self.socket_path.exists():
            assert self.proc.poll() is None and time.monotonic() < deadline, self.log.read_text()
            time.sleep(0.05)

    def command(self, line: str) -> str:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(str(self.socket_path))
            sock.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def stats(self) -> dict[str, dict[str, str]]:
        """``show stat`` rows of the backend's servers and the backend itself, by server name."""
        text = self.command("show stat").lstrip("# ")
        rows = csv.DictReader(io.StringIO(text))
        return {row["svname"]: row for row in rows if row["pxname"] == "replicas"}

    def enable(self, slot: str) -> None:
        self.command(f"enable server replicas/{slot}")

    def disable(self, slot: str) -> None:
        self.command(f"disable server replicas/{slot}")

    def wait_status(self, slot: str, prefix: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.stats()[slot]["status"].startswith(prefix):
            assert time.monotonic() < deadline, f"{slot} never became {prefix}: {self.stats()[slot]}"
            time.sleep(0.05)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)
