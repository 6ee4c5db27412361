"""Which version folders of a model to load, and which one answers unversioned requests.

Policies, as in Triton's ``version_policy``, written as one string per model:

* ``default``: only the version an unversioned request gets (today's rule, below). This is the
  default policy, so a repository that never mentions policies behaves as before.
* ``latest`` or ``latest:N``: the N highest version folders.
* ``all``: every version folder.
* ``specific:1,3``: exactly these versions (a missing one is reported, not ignored).

The default version of a model is the pinned one (``model_versions``) if any, else the highest loaded
version whose manifest does not opt out with ``"default": false`` (e.g. an int8 variant that failed its
quality gate), else the highest loaded version.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from service.runtime.manifest import MANIFEST_FILENAME, ManifestError

_VERSION_DIR = re.compile(r"^\d+$")
_POLICY = re.compile(r"^(default|all|latest(?::([1-9]\d*))?|specific:(\d+(?:,\d+)*))$")

PolicyKind = Literal["default", "latest", "all", "specific"]


@dataclass(frozen=True)
class VersionPolicy:
    kind: PolicyKind
    count: int = 1
    versions: tuple[int, ...] = ()

    @classmethod
    def parse(cls, text: str) -> VersionPolicy:
        match = _POLICY.match(text.strip())
        if match is None:
            raise ValueError(
                f"version policy {text!r} is not one of: default, all, latest, latest:N, specific:V1,V2,..."
            )
        word = match.group(1).split(":")[0]
        if word == "latest":
            return cls("latest", count=int(match.group(2) or 1))
        if word == "specific":
            return cls("specific", versions=tuple(sorted({int(v) for v in match.group(3).split(",")})))
        return cls("all" if word == "all" else "default")

    def __str__(self) -> str:
        if self.kind == "latest":
            return f"latest:{self.count}"
        if self.kind == "specific":
            return "specific:" + ",".join(map(str, self.versions))
        return self.kind


def version_folders(model_dir: Path) -> dict[int, Path]:
    """Integer-named folders of a model; "1" and "01" both claiming version 1 is refused."""
    folders: dict[int, list[Path]] = {}
    for path in model_dir.iterdir():
        if path.is_dir() and _VERSION_DIR.match(path.name):
            folders.setdefault(int(path.name), []).append(path)
    for version, paths in folders.items():
        if len(paths) > 1:
            raise ManifestError(f"{model_dir}: ambiguous folders for version {version}: {sorted(paths)}")
    if not folders:
        raise ManifestError(f"{model_dir}: no integer version folders")
    return {version: paths[0] for version, paths in sorted(folders.items())}


def opts_out(version_dir: Path) -> bool:
    """Whether the manifest says ``"default": false``. Unreadable manifests do not opt out: they get
    loaded and their failure reported, rather than silently serving an older version."""
    try:
        return json.loads((version_dir / MANIFEST_FILENAME).read_text()).get("default") is False
    except (OSError, ValueError, AttributeError):
        return False


def choose_default(candidates: Iterable[int], folders: Mapping[int, Path], pinned: int | None) -> int:
    ordered = sorted(candidates, reverse=True)
    if pinned is not None:
        return pinned
    return next((v for v in ordered if not opts_out(folders[v])), ordered[0])


def select_versions(
    model_dir: Path, policy: VersionPolicy, pinned: int | None
) -> tuple[dict[int, Path], int]:
    """The version folders to load (ascending) and the default version among them."""
    folders = version_folders(model_dir)
    if pinned is not None and pinned not in folders:
        raise ManifestError(f"pinned version {pinned} not found in {model_dir} (have {sorted(folders)})")
    if policy.kind == "default":
        chosen = [choose_default(folders, folders, pinned)]
    elif policy.kind == "all":
        chosen = list(folders)
    elif policy.kind == "latest":
        chosen = sorted(folders)[-policy.count :]
    else:
        missing = sorted(set(policy.versions) - set(folders))
        if missing:
            raise ManifestError(
                f"version policy {policy} names version(s) {missing} not found in {model_dir} "
                f"(have {sorted(folders)})"
            )
        chosen = list(policy.versions)
    if pinned is not None and pinned not in chosen:
        chosen.append(pinned)
    selected = {v: folders[v] for v in sorted(chosen)}
    return selected, choose_default(selected, folders, pinned)
