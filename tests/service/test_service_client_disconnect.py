"""A client that hangs up in the middle of its request body is counted as 499, not as a server fault.

The deployed server, with the direct lane on and off: the request is cut off after part of its declared
body, and the metrics and the log are read afterwards.
"""

from __future__ import annotations

import re
import socket
import time
import urllib.request
from pathlib import Path

import pytest
from svc_helpers import MODELS, launched_service


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _counts(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    found = re.findall(r'^seqserve_requests_total\{route="/v1/forecast",status="(\d+)"\} (\S+)$', text, re.M)
    return {status: float(value) for status, value in found}


@pytest.mark.parametrize("lane", ["true", "false"])
def test_a_body_cut_short_by_the_client_counts_as_499_and_logs_no_error(tmp_path: Path, lane: str) -> None:
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "m4-hourly").symlink_to(MODELS / "m4-hourly", target_is_directory=True)
    port = _free_port()
    with launched_service(tmp_path, port, 1, {"SEQSERVE_DIRECT_LANE": lane}) as (_, log_path):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            head = b"POST /v1/forecast HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            sock.sendall(head + b"Content-Length: 3000\r\n\r\n" + b'{"series": [{"values": [1.0, 2.0')
            time.sleep(0.2)  # the server is waiting for the rest of the body when the client leaves
        deadline = time.monotonic() + 10
        while "499" not in (counts := _counts(port)) and time.monotonic() < deadline:
            time.sleep(0.05)
        log = log_path.read_text()
    assert {status: n for status, n in counts.items() if n} == {"499": 1.0}, counts
    assert "internal error" not in log and "Exception in ASGI application" not in log, log
