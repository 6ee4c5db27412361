"""The reference profile (``profile.json``): per feature, bin edges and the training data's counts.

Training writes it beside the graph and lists it (with its checksum) in the manifest's ``files``; the
manifest points at it with ``"drift": {"profile": "profile.json"}``. The service never trusts a profile
the checksums do not cover.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from service.runtime.manifest import MANIFEST_FILENAME, ManifestError, ModelManifest

PROFILE_VERSION = 1


class FeatureReference(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)

    name: Annotated[str, Field(min_length=1, pattern=r"^[a-z][a-z0-9_]*$")]
    side: Literal["input", "output"]
    description: str = ""
    edges: list[float]
    counts: Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1)]

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if len(self.counts) != len(self.edges) + 1:
            raise ValueError(f"{self.name}: {len(self.edges)} edges need {len(self.edges) + 1} counts")
        if any(not math.isfinite(e) for e in self.edges) or any(
            a >= b for a, b in zip(self.edges, self.edges[1:], strict=False)
        ):
            raise ValueError(f"{self.name}: edges must be finite and strictly increasing")
        if sum(self.counts) == 0:
            raise ValueError(f"{self.name}: the reference has no rows")
        return self


class Profile(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)

    profile_version: Literal[1]
    task: str
    # What the feature functions need (season length, unk_id, quantile indices...), as training used it.
    parameters: dict[str, Any] = Field(default_factory=dict)
    features: Annotated[list[FeatureReference], Field(min_length=1)]

    @model_validator(mode="after")
    def _unique(self) -> Self:
        names = [f.name for f in self.features]
        if len(set(names)) != len(names):
            raise ValueError(f"feature names must be unique, got {names}")
        return self


def profile_filename(version_dir: Path) -> str | None:
    """The manifest's ``drift.profile`` entry (the typed manifest ignores this key), or None."""
    try:
        raw = json.loads((version_dir / MANIFEST_FILENAME).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ManifestError(f"{version_dir / MANIFEST_FILENAME}: unreadable: {exc}") from exc
    drift = raw.get("drift") if isinstance(raw, dict) else None
    name = drift.get("profile") if isinstance(drift, dict) else None
    if name is not None and not isinstance(name, str):
        raise ManifestError("drift.profile must be a file name")
    return name


def load_profile(version_dir: Path, manifest: ModelManifest) -> Profile | None:
    """The version's profile, or None when its manifest names none. Raises ManifestError when broken."""
    filename = profile_filename(version_dir)
    if filename is None:
        return None
    if filename not in manifest.files:
        raise ManifestError(f"drift profile {filename!r} is not listed (and checksummed) in files")
    try:
        profile = Profile.model_validate_json((version_dir / filename).read_bytes())
    except (OSError, ValidationError) as exc:
        raise ManifestError(f"{version_dir / filename}: invalid drift profile: {exc}") from exc
    if profile.task != manifest.task:
        raise ManifestError(f"drift profile is for task {profile.task!r}, the model is {manifest.task!r}")
    return profile
