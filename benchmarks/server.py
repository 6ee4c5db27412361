"""A server under test as a subprocess: start, wait for /readyz, CPU and memory of its processes, stop."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO, Any

_CLK_TCK = os.sysconf("SC_CLK_TCK")
_PAGE_KB = 1  # /proc/<pid>/status reports kB


class ServerError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stat_fields(pid: int) -> list[str]:
    text = Path(f"/proc/{pid}/stat").read_text()
    # Field 2 (comm) is in parentheses and may contain spaces; everything after it is space separated.
    return text[text.rindex(")") + 2 :].split()


def _stat_fields_path(path: Path) -> list[str]:
    text = path.read_text()
    return text[text.rindex(")") + 2 :].split()


def _descendants(root: int) -> list[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                parents[int(entry.name)] = int(_stat_fields(int(entry.name))[1])
    found, frontier = [], [root]
    while frontier:
        pid = frontier.pop()
        kids = sorted(p for p, pp in parents.items() if pp == pid)
        found += kids
        frontier += kids
    return found


def _cmdline(pid: int) -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    return ""


def memory_kb(pid: int) -> dict[str, int]:
    """VmHWM (peak resident set), VmRSS (current) and its anonymous and file-backed parts, in kB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
            out[key] = int(value.split()[0]) * _PAGE_KB
    return out


class Server:
    """One server process tree, started in its own session so it can be stopped as a group."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], port: int, log_path: Path) -> None:
        self.name, self.argv, self.env, self.port, self.log_path = name, argv, env, port, log_path
        self.base_url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self, ready_path: str = "/readyz", timeout_s: float = 180.0) -> None:
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            self.argv, env=self.env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + timeout_s
        streak, last = 0, "no answer"
        # Several workers share the socket: ask until many answers in a row are 200.
        while streak < 20:
            if self.proc.poll() is not None:
                raise ServerError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                tail = self.log_tail()  # before stop(), which closes the log
                self.stop()
                raise ServerError(f"{self.name} not ready after {timeout_s:.0f} s ({last}):\n{tail}")
            status, last = self.get(ready_path)
            streak = streak + 1 if status == 200 else 0
            time.sleep(0.02 if status == 200 else 0.25)

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.base_url + path, timeout=5) as resp:
                return int(resp.status), resp.read().decode(errors="replace")
        except urllib.error.HTTPError as exc:
            return int(exc.code), exc.read().decode(errors="replace")
        except (OSError, urllib.error.URLError) as exc:
            return 0, str(exc)

    def post_json(self, path: str, body: str) -> tuple[int, Any]:
        req = urllib.request.Request(
            self.base_url + path, data=body.encode(), headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return int(resp.status), json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return int(exc.code), exc.read().decode(errors="replace")

    def pids(self) -> list[int]:
        if self.proc is None:
            return []
        return [self.proc.pid, *_descendants(self.proc.pid)]

    def workers(self) -> list[int]:
        """Processes that serve requests: the children (uvicorn workers), or the process itself."""
        if self.proc is None:
            return []
        kids = [p for p in _descendants(self.proc.pid) if "resource_tracker" not in _cmdline(p)]
        return kids or [self.proc.pid]

    def cpu_seconds(self) -> float:
        total = 0
        for pid in self.pids():
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = _stat_fields(pid)
                total += int(fields[11]) + int(fields[12])  # utime, stime (stat fields 14, 15)
        return total / _CLK_TCK

    def thread_cpu_seconds(self) -> dict[tuple[int, int], float]:
        """(worker pid, thread id) -> user + system seconds of every thread of every worker."""
        out = {}
        for pid in self.workers():
            with contextlib.suppress(OSError):
                for task in Path(f"/proc/{pid}/task").iterdir():
                    with contextlib.suppress(OSError, ValueError, IndexError):
                        fields = _stat_fields_path(task / "stat")
                        out[(pid, int(task.name))] = (int(fields[11]) + int(fields[12])) / _CLK_TCK
        return out

    def memory(self) -> list[dict[str, Any]]:
        out = []
        workers = set(self.workers())
        for pid in self.pids():
            with contextlib.suppress(OSError):
                kb = memory_kb(pid)
                out.append(
                    {
                        "pid": pid,
                        "role": "worker" if pid in workers else self._role(pid),
                        "peak_rss_mb": kb.get("VmHWM", 0) * 1024 / 1e6,
                        "rss_mb": kb.get("VmRSS", 0) * 1024 / 1e6,
                        # File-backed pages (libraries, mapped weights) are shared between workers.
                        "rss_anon_mb": kb.get("RssAnon", 0) * 1024 / 1e6,
                        "rss_file_mb": kb.get("RssFile", 0) * 1024 / 1e6,
                        "cmdline": _cmdline(pid)[:160],
                    }
                )
        return out

    def _role(self, pid: int) -> str:
        return "supervisor" if self.proc is not None and pid == self.proc.pid else "helper"

    def log_tail(self, chars: int = 3000) -> str:
        if self._log is not None:
            self._log.flush()
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-chars:]
        return ""

    def stop(self, grace_s: float = 15.0) -> None:
        """SIGINT (uvicorn's graceful shutdown), then SIGKILL to the process group it leads."""
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        # Workers left behind by a crashed supervisor share its process group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        if self._log is not None:
            self._log.close()
        self.proc = None
