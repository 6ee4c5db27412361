"""Helpers for the browser tests: a real service on loopback and Debian's headless chromium.

Chromium is started so that nothing can leave loopback: every request goes through a proxy address
where nothing listens (127.0.0.1:9), except loopback itself, and host names other than 127.0.0.1 do not
resolve. Each request the page makes is also recorded from the DevTools performance log, so a test
can assert that none was even attempted.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from selenium import webdriver
from selenium.webdriver.chrome.service import Service as ChromeService

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "playground"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_service(**settings: str) -> Iterator[str]:
    """``python -m service`` on a free loopback port with the committed models; yields its base URL."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("SEQSERVE_")}
    env.update(
        SEQSERVE_PORT=str(port), SEQSERVE_HOST="127.0.0.1", SEQSERVE_WORKERS="1", SEQSERVE_PROVIDERS="cpu",
        SEQSERVE_MODEL_REPOSITORY=str(REPO / "models"), **settings,
    )  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "service"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "service exited"
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the service did not start"
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def chromium() -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1360,1000",
        "--hide-scrollbars",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-default-apps",
        "--disable-sync",
        # Nothing may leave loopback: a dead proxy for everything but loopback, and no name resolution.
        "--proxy-server=http://127.0.0.1:9",
        "--proxy-bypass-list=127.0.0.1",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    return webdriver.Chrome(options=options, service=ChromeService(executable_path=CHROMEDRIVER))


def requested_urls(driver: webdriver.Chrome) -> list[str]:
    """Every URL the page asked for since the last call (DevTools Network.requestWillBeSent events)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def off_loopback(urls: list[str]) -> list[str]:
    allowed_schemes = {"data", "blob", "about"}
    return [
        url for url in urls
        if urlsplit(url).scheme not in allowed_schemes and urlsplit(url).hostname != "127.0.0.1"
    ]  # fmt: skip


def console_errors(driver: webdriver.Chrome) -> list[dict[str, Any]]:
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def screenshot(driver: webdriver.Chrome, out_dir: Path, name: str) -> Path:
    """Save to the test's own output folder and copy to test-artifacts/ (ignored by git) for people."""
    path = out_dir / f"{name}.png"
    assert driver.save_screenshot(str(path)), f"screenshot {name} failed"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, ARTIFACTS / path.name)
    return path
