"""podman on this host: a private containers.conf, and a Debian base image made with debootstrap.

No Docker engine and no registry here, so the images' base is built from Debian packages and tagged as
the name ``deploy/Dockerfile``'s ``FROM`` uses; ``--pull=never`` then finds it locally. Host quirks,
handled here and never by changing the host's configuration:
- root cannot raise resource limits, so default ulimits are set below the host's hard limits (runc
  refused limits equal to them);
- crun refuses this host's hybrid cgroups: runc, with the cgroupfs manager (no systemd);
- the build reaches PyPI through the host's TLS setup: the host's CA bundle goes into the base image,
  and pip there is pointed at it.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import resource
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TOOLS = ("podman", "podman-compose", "debootstrap", "runc")
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# python-is-python3: the Dockerfile and its HEALTHCHECK call `python`; python3-venv: `python -m venv`.
BASE_PACKAGES = ("python3", "python3-venv", "python-is-python3", "ca-certificates")
MIRROR = "http://deb.debian.org/debian"
BASE_LABEL = "org.seqserve.test-base"


def require_tools() -> None:
    missing = [t for t in TOOLS if not (shutil.which(t) or Path(f"/usr/sbin/{t}").exists())]
    if missing:
        pytest.fail(f"{', '.join(missing)} missing: bin/test installs them from Debian")
    if os.geteuid() != 0:
        pytest.fail("the image test runs rootful podman and debootstrap: run it as root")


def containers_conf(directory: Path) -> Path:
    """A private CONTAINERS_CONF: limits below the host's hard limits, runc, cgroupfs, netavark DNS."""
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nproc = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    nofile = min(nofile // 2, 65536) if nofile != resource.RLIM_INFINITY else 65536
    nproc = min(nproc // 2, 32768) if nproc != resource.RLIM_INFINITY else 32768
    path = directory / "containers.conf"
    path.write_text(
        "[containers]\n"
        f'default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]\n'
        "[engine]\n"
        'runtime = "runc"\n'
        'cgroup_manager = "cgroupfs"\n'
        'events_logger = "file"\n'
        "[network]\n"
        # Compose service names resolve through aardvark-dns (Prometheus finds seqserve by DNS).
        'network_backend = "netavark"\n'
    )
    return path


class Podman:
    def __init__(self, conf: Path) -> None:
        self.env = {**os.environ, "CONTAINERS_CONF": str(conf)}

    def run(self, *args: str, timeout: float = 300, check: bool = True, cwd: Path = REPO) -> str:
        result = subprocess.run(
            list(args), cwd=cwd, env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )
        output = result.stdout[-3000:] + result.stderr[-3000:]
        if check:
            assert result.returncode == 0, f"{' '.join(args)} failed:\n{output}"
        return result.stdout

    def podman(self, *args: str, timeout: float = 300, check: bool = True) -> str:
        return self.run("podman", *args, timeout=timeout, check=check)

    def logs(self, container: str) -> str:
        """A container's output (podman writes the container's stderr to its own stderr)."""
        result = subprocess.run(["podman", "logs", container], env=self.env, capture_output=True, text=True,
                                timeout=60, check=False)  # fmt: skip
        return (result.stdout + result.stderr)[-3000:]


def dockerfile_base(dockerfile: Path) -> str:
    (base,) = set(re.findall(r"^FROM (\S+)", dockerfile.read_text(), flags=re.MULTILINE))
    return base


def _base_fingerprint() -> str:
    digest = hashlib.sha256(" ".join(BASE_PACKAGES).encode())
    digest.update(HOST_CA_BUNDLE.read_bytes())
    return digest.hexdigest()[:16]


def ensure_base_image(podman: Podman, name: str) -> bool:
    """Tag a debootstrapped bookworm with python3 as ``name``; reuse it when already made. True = built."""
    fingerprint = _base_fingerprint()
    qualified = name if "/" in name else f"docker.io/library/{name}"
    label = f'{{{{index .Labels "{BASE_LABEL}"}}}}'
    existing = podman.podman("image", "inspect", "--format", label, qualified, check=False).strip()
    if existing == fingerprint:
        return False
    with tempfile.TemporaryDirectory(prefix="seqserve-rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        podman.run("debootstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}", "bookworm",
                   str(rootfs), MIRROR, timeout=600)  # fmt: skip
        shutil.copyfile(HOST_CA_BUNDLE, rootfs / "etc/ssl/certs/ca-certificates.crt")
        (rootfs / "etc/pip.conf").write_text(f"[global]\ncert = {HOST_CA_BUNDLE}\n")
        shutil.rmtree(rootfs / "var/lib/apt/lists", ignore_errors=True)
        (rootfs / "var/lib/apt/lists/partial").mkdir(parents=True)
        archive = Path(tmp) / "rootfs.tar"
        podman.run("tar", "-C", str(rootfs), "-cf", str(archive), ".")
        podman.podman(
            "import",
            "--change", f"LABEL {BASE_LABEL}={fingerprint}",
            "--change", "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "--change", 'CMD ["python3"]',
            str(archive), qualified,
        )  # fmt: skip
    return True


def build_context(directory: Path, paths: tuple[str, ...]) -> Path:
    """The committed files the image needs (``git archive HEAD``), as a fresh clone has them.

    Not the working tree: in a tree several people edit at once, tracked files may already import
    modules that are not committed yet, and untracked work in progress must not go into the image.
    """
    archive = subprocess.run(
        ["git", "archive", "--format=tar", "HEAD", "--", *paths], cwd=REPO, capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(directory, filter="data")
    return directory
