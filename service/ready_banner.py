"""Tell the person who started the service where to point a browser, once it can answer.

The launcher cannot know when the workers have loaded their models, so a daemon thread polls the
service's own ``/readyz`` over loopback and, at the first 200, logs the URLs to open. Polling from the
launcher (instead of logging from each worker's lifespan) prints the lines once whatever the worker count.
"""

from __future__ import annotations

import logging
import threading
import time
import urllib.error
import urllib.request

from service.config import Settings

logger = logging.getLogger("uvicorn.error")
POLL_SECONDS = 0.25
GIVE_UP_SECONDS = 600.0
_WILDCARDS = {"", "0.0.0.0", "::", "[::]"}


def base_url(host: str, port: int) -> str:
    """The URL a local browser can use: a wildcard bind is reached through loopback."""
    if host in _WILDCARDS:
        host = "127.0.0.1"
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}"


def banner(url: str, all_ready: bool = True) -> str:
    head = "seqserve is ready"
    if not all_ready:
        head = "seqserve is up, but not every model is ready (GET /readyz says why)"
    return (
        f"{head}; open:\n"
        f"  playground  {url}/\n"
        f"  API docs    {url}/docs\n"
        f"  metrics     {url}/metrics"
    )


def _readiness(url: str, key: str | None) -> int | None:
    """/readyz's status, or None while nothing answers (workers still loading their models)."""
    request = urllib.request.Request(url + "/readyz")
    if key is not None:
        request.add_header("X-API-Key", key)
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (urllib.error.URLError, OSError):
        return None


def _watch(url: str, key: str | None) -> None:
    deadline = time.monotonic() + GIVE_UP_SECONDS
    while time.monotonic() < deadline:
        status = _readiness(url, key)
        # Any answer means a worker finished its start-up; a 503 names the models that failed to load.
        if status is not None:
            logger.info(banner(url, all_ready=status == 200))
            return
        time.sleep(POLL_SECONDS)


def announce_when_ready(settings: Settings) -> None:
    """Start the polling thread (nothing to poll on port 0, where the kernel picks the port)."""
    if settings.port == 0:
        return
    # With protected health routes, the launcher knows a valid key; it is sent only to loopback.
    protected = settings.api_keys and settings.auth_protect_health_and_metrics
    key = settings.api_keys[0].get_secret_value() if protected else None
    url = base_url(settings.host, settings.port)
    threading.Thread(target=_watch, args=(url, key), name="seqserve-ready-banner", daemon=True).start()
