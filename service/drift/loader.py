"""Build the drift observer a task handler feeds, from the version folder and the settings."""

from __future__ import annotations

import logging
from pathlib import Path

from service.config import Settings
from service.drift.extractors import EXTRACTOR_FEATURES, EXTRACTORS
from service.drift.monitor import DriftMonitor, DriftObserver, NoDrift
from service.drift.profile import load_profile
from service.runtime.manifest import ManifestError, ModelManifest

logger = logging.getLogger(__name__)


def drift_observer(manifest: ModelManifest, version_dir: Path, settings: Settings) -> DriftObserver:
    """A monitor when enabled and the version ships a checksummed profile; otherwise a no-op.

    A profile that is named but broken refuses the version (ManifestError), as any other broken file.
    """
    if not settings.drift_enabled:
        return NoDrift("disabled by SEQSERVE_DRIFT_ENABLED=false")
    profile = load_profile(version_dir, manifest)
    if profile is None:
        logger.info("no drift profile: model=%s version=%s", manifest.name, manifest.version)
        return NoDrift("this version's manifest names no drift profile")
    factory = EXTRACTORS.get(manifest.task)
    if factory is None:
        return NoDrift(f"no drift features are defined for task {manifest.task!r}")
    if not {f.name for f in profile.features} & set(EXTRACTOR_FEATURES[manifest.task]):
        return NoDrift("the profile has no feature this service computes")
    try:
        extractor = factory(profile.parameters)
    except (KeyError, TypeError, ValueError) as exc:
        raise ManifestError(f"drift profile parameters are incomplete: {exc!r}") from exc
    monitor = DriftMonitor(
        manifest.name,
        manifest.version,
        profile,
        extractor,
        settings.drift_window_rows,
        settings.drift_window_seconds,
        settings.drift_refresh_seconds,
        settings.drift_rows_per_refresh,
    )
    if monitor.ignored:
        logger.warning("drift profile features not computed by this service: %s", monitor.ignored)
    return monitor
