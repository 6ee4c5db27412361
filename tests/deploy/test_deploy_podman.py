"""The CPU image built and run for real with podman, then the compose stack with Prometheus.

1. A Debian bookworm base (debootstrap --variant=minbase, python3, the host's CA bundle) is imported and
   tagged as the FROM image deploy/Dockerfile names (cached between runs, keyed by packages and CA bundle).
2. ``podman build --pull=never --format docker`` (OCI format would drop HEALTHCHECK) from the committed
   files (``git archive HEAD``), with the working tree's deploy/Dockerfile.
3. The image runs with a read-only root filesystem and a /tmp tmpfs (as the Helm chart runs it): /readyz,
   a real forecast, ``podman healthcheck run``, and the non-root user.
4. ``podman-compose up`` of docker-compose.yml's seqserve and prometheus services, with a Prometheus image
   built from Debian's package and tagged as compose's image: Prometheus finds seqserve by DNS inside the
   compose network and reports the target up. The compose file is used as written except for its host
   port mappings (dropped, so a busy port 8000 or 9090 on a shared host cannot fail the test; everything
   is checked from inside the network) and the Grafana and GPU services (not started).
Everything is torn down afterwards. Cold (no base image, no layer cache) about 3.5 minutes on a quiet
2-core host, 6.3 on a loaded one; warm (base image and dependency layer cached) about a minute.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from deploy_tools import DEPLOY, REPO
from podman_tools import (
    Podman,
    build_context,
    containers_conf,
    dockerfile_base,
    ensure_base_image,
    require_tools,
)

from service.config import Settings

IMAGE = "localhost/seqserve:latest"
CONTAINER = f"seqserve-image-test-{os.getpid()}"
PROJECT = f"seqserve-compose-test-{os.getpid()}"
# What the Dockerfile COPYs (besides itself): see its COPY lines and .dockerignore.
CONTEXT_PATHS = ("pyproject.toml", "README.md", "service", "models")


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Podman:
    require_tools()
    return Podman(containers_conf(tmp_path_factory.mktemp("podman")))


@pytest.fixture(scope="module")
def image(podman: Podman, tmp_path_factory: pytest.TempPathFactory) -> str:
    base = dockerfile_base(DEPLOY / "Dockerfile")
    ensure_base_image(podman, base)
    context = build_context(tmp_path_factory.mktemp("context"), CONTEXT_PATHS)
    podman.podman("build", "--pull=never", "--format", "docker", "-f", str(DEPLOY / "Dockerfile"),
                  "-t", IMAGE, str(context), timeout=600)  # fmt: skip
    return IMAGE


def _wait(what: str, check: Any, timeout: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def _published_port(podman: Podman, container: str) -> int:
    # "8000/tcp -> 127.0.0.1:41234"
    return int(podman.podman("port", container, "8000/tcp").strip().rsplit(":", 1)[1])


def _ready(podman: Podman, container: str, base: str) -> bool:
    running = podman.podman("inspect", "--format", "{{.State.Running}}", container).strip()
    assert running == "true", f"{container} exited:\n{podman.logs(container)}"
    try:
        return httpx.get(f"{base}/readyz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def test_image_serves_passes_its_healthcheck_and_runs_as_non_root(podman: Podman, image: str) -> None:
    inspected = json.loads(podman.podman("image", "inspect", image))[0]
    assert inspected["Config"]["User"] == "10001"
    healthcheck = inspected.get("Healthcheck") or {}
    assert "/readyz" in " ".join(healthcheck.get("Test", [])), "HEALTHCHECK lost (OCI format?)"
    podman.podman("run", "-d", "--name", CONTAINER, "--read-only", "--tmpfs", "/tmp",
                  "-p", "127.0.0.1::8000", image)  # fmt: skip
    try:
        base = f"http://127.0.0.1:{_published_port(podman, CONTAINER)}"
        _wait("/readyz in the container", lambda: _ready(podman, CONTAINER, base))
        values = [float(v % 24) for v in range(200)]
        body = {"series": [{"id": "s", "values": values}]}
        response = httpx.post(f"{base}/v1/forecast", json=body, timeout=30)
        assert response.status_code == 200, response.text
        (forecast,) = response.json()["forecasts"]
        assert forecast["id"] == "s" and len(forecast["quantiles"]) > 0
        health = podman.podman("healthcheck", "run", CONTAINER, check=False)
        status = podman.podman("inspect", "--format", "{{.State.Health.Status}}", CONTAINER).strip()
        assert status == "healthy", health
        uid = podman.podman("exec", CONTAINER, "python", "-c", "import os; print(os.getuid())").strip()
        assert uid == "10001"
    finally:
        podman.podman("rm", "-f", "-t", "5", CONTAINER, check=False)


def _absolute(volume: str) -> str:
    source, target = volume.split(":", 1)
    return f"{REPO / source}:{target}" if source.startswith("./") else volume


def _compose_file(directory: Path) -> Path:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = {name: compose["services"][name] for name in ("seqserve", "prometheus")}
    for service in services.values():
        service.pop("ports", None)
        # Relative bind mounts are relative to the compose file, which is written elsewhere here.
        service["volumes"] = [_absolute(volume) for volume in service.get("volumes", [])]
    services["seqserve"]["build"]["context"] = str(REPO)
    path = directory / "docker-compose.yml"
    path.write_text(yaml.safe_dump({"name": PROJECT, "services": services, "volumes": compose["volumes"]}))
    return path


@pytest.fixture
def compose_stack(podman: Podman, image: str, tmp_path: Path) -> Iterator[tuple[Path, str]]:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    assert compose["services"]["seqserve"]["image"] == "seqserve:latest"
    assert image.endswith("/seqserve:latest")
    prometheus_image = compose["services"]["prometheus"]["image"]
    podman.podman("build", "--pull=never", "--format", "docker", "--build-arg",
                  f"BASE={dockerfile_base(DEPLOY / 'Dockerfile')}", "-f",
                  str(Path(__file__).with_name("prometheus-debian.Containerfile")),
                  "-t", f"docker.io/{prometheus_image}", str(tmp_path), timeout=600)  # fmt: skip
    path = _compose_file(tmp_path)
    try:
        podman.run("podman-compose", "-f", str(path), "-p", PROJECT, "up", "-d", cwd=tmp_path, timeout=300)
        yield path, prometheus_image
    finally:
        podman.run("podman-compose", "-f", str(path), "-p", PROJECT, "down", "-v", cwd=tmp_path, check=False)
        podman.podman("network", "rm", "-f", f"{PROJECT}_default", check=False)


def test_compose_up_prometheus_scrapes_seqserve_inside_the_network(
    podman: Podman, compose_stack: tuple[Path, str]
) -> None:
    names = podman.podman("ps", "--filter", f"label=io.podman.compose.project={PROJECT}",
                          "--format", "{{.Names}}").split()  # fmt: skip
    (prometheus,) = [n for n in names if "prometheus" in n]
    assert any("seqserve" in n for n in names), names
    port = Settings().port

    def fetch(url: str) -> str:
        script = "import sys, urllib.request as u; print(u.urlopen(sys.argv[1], timeout=3).read().decode())"
        return podman.podman("exec", prometheus, "python3", "-c", script, url, check=False)

    # Through compose's DNS, from the Prometheus container: the service is up and ready.
    _wait("seqserve ready in the compose network", lambda: '"ready"' in fetch(f"http://seqserve:{port}/readyz"))

    def seqserve_target() -> dict[str, Any] | None:
        text = fetch("http://localhost:9090/api/v1/targets")
        if not text.strip():
            return None
        targets = json.loads(text)["data"]["activeTargets"]
        up = [t for t in targets if t["labels"]["job"] == "seqserve" and t["health"] == "up"]
        return up[0] if up else None

    target = _wait("Prometheus to report the seqserve target up", seqserve_target, timeout=90)
    assert target["labels"]["service"] == "seqserve" and target["scrapeUrl"].endswith(f":{port}/metrics")
