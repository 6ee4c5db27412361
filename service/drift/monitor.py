"""One model version's drift monitor: a queue the handler feeds, a window, scores, and its gauges.

Hot path (``observe``): append the request's already-built arrays to a list under a lock, nothing
else. ``refresh`` (every ``drift_refresh_seconds`` on the refresher thread, and on ``GET .../drift``)
turns everything queued into feature rows at once, slides the window and recomputes the PSI gauges.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Protocol

import numpy as np

from service.drift import metrics, refresher
from service.drift.extractors import Extractor, Observed
from service.drift.profile import FeatureReference, Profile
from service.drift.psi import (
    ACT,
    PRIOR_ROWS,
    WATCH,
    bin_counts,
    reference_probabilities,
    status,
    window_probabilities,
)
from service.drift.psi import psi as psi_of
from service.drift.window import RowWindow


class DriftObserver(Protocol):
    def observe(self, inputs: Any, outputs: np.ndarray[Any, Any] | None) -> None: ...


class NoDrift:
    """Stands in when monitoring is off or the version has no profile: ``observe`` does nothing."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def observe(self, inputs: Any, outputs: np.ndarray[Any, Any] | None) -> None:
        return None


NO_DRIFT = NoDrift("not set up")


class _Feature:
    def __init__(self, ref: FeatureReference) -> None:
        self.ref = ref
        self.edges = np.asarray(ref.edges, dtype=np.float64)
        self.reference = reference_probabilities(ref.counts)
        self.counts = np.zeros(len(ref.counts), dtype=np.int64)
        self.score = 0.0


class DriftMonitor:
    def __init__(
        self,
        model: str,
        version: int,
        profile: Profile,
        extractor: Extractor,
        window_rows: int,
        window_seconds: float,
        refresh_seconds: float,
        rows_per_refresh: int | None = None,
    ) -> None:
        self.model = model
        self.version = version
        self.refresh_seconds = refresh_seconds
        known = set(extractor.names)
        self._features = [_Feature(f) for f in profile.features if f.name in known]
        self.ignored = sorted({f.name for f in profile.features} - known)
        self._extractor = extractor
        self._window = RowWindow(window_rows, len(self._features), window_seconds)
        self._rows = 0
        self._oldest_age: float | None = None
        self._queue: list[Observed] = []
        self._queued_rows = 0
        # A sample is enough to score a distribution: past this many rows between two refreshes, rows
        # are skipped (counted), which bounds the refresher's work per interval whatever the traffic.
        self._rows_per_refresh = min(window_rows, rows_per_refresh or window_rows)
        self.skipped_rows = 0
        self._queue_lock = threading.Lock()
        self._refresh_lock = threading.Lock()
        self.retired = False
        # The refresher thread first refreshes a monitor one interval after it was created.
        self.last_refresh = time.monotonic()
        self._publish()  # every series exists (at 0) from the start
        refresher.register(self)

    def observe(self, inputs: Any, outputs: np.ndarray[Any, Any] | None) -> None:
        """Queue one request's rows: ``outputs`` has one row per input row (None: count the inputs)."""
        rows = len(outputs if outputs is not None else inputs)
        with self._queue_lock:
            if self._queued_rows >= self._rows_per_refresh:
                self.skipped_rows += rows
                return
            self._queue.append((inputs, outputs))
            self._queued_rows += rows

    def refresh(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self.last_refresh = time.monotonic()
        with self._queue_lock:
            queued, self._queue, self._queued_rows = self._queue, [], 0
        if queued:
            refresher.claim(self)
        with self._refresh_lock:
            if queued:
                columns = self._extractor.extract(queued)
                rows = np.column_stack([columns[f.ref.name] for f in self._features])
                self._window.add(rows, now)
            values, self._oldest_age = self._window.current(now)
            self._rows = values.shape[0]
            for j, feature in enumerate(self._features):
                feature.counts = bin_counts(values[:, j], feature.edges)
                p = window_probabilities(feature.counts, feature.reference)
                feature.score = psi_of(p, feature.reference)
            if not self.retired:
                self._publish()

    def _publish(self) -> None:
        scores = [(f.ref.side, f.ref.name, f.score) for f in self._features]
        metrics.publish(self.model, self.version, self._rows, scores)

    @property
    def series(self) -> list[tuple[str, str]]:
        return [(f.ref.side, f.ref.name) for f in self._features]

    def retire(self, remove_series: bool) -> None:
        """A newer version of the model took over: stop publishing, and drop this version's series."""
        with self._refresh_lock:
            self.retired = True
            if remove_series:
                metrics.remove(self.model, self.version, self.series)

    def report(self, now: float | None = None) -> dict[str, Any]:
        """Scores, window and reference side by side (``GET /v1/models/{name}/drift``)."""
        self.refresh(now)
        return {
            "enabled": True,
            "thresholds": {"watch": WATCH, "act": ACT},
            "window": {
                "rows": self._rows,
                "max_rows": self._window.max_rows,
                "max_seconds": self._window.max_seconds,
                "oldest_row_age_seconds": self._oldest_age,
                "rows_per_refresh": self._rows_per_refresh,
                "skipped_rows": self.skipped_rows,
                "prior_rows": PRIOR_ROWS,
            },
            "features": [self._feature_report(f) for f in self._features],
            "ignored_profile_features": self.ignored,
        }

    def _feature_report(self, feature: _Feature) -> dict[str, Any]:
        total = int(feature.counts.sum())
        window = feature.counts / total if total else np.zeros(feature.counts.size)
        ref_counts = np.asarray(feature.ref.counts, dtype=np.float64)
        return {
            "name": feature.ref.name,
            "side": feature.ref.side,
            "description": feature.ref.description,
            "psi": round(feature.score, 6),
            "status": status(feature.score),
            "edges": feature.ref.edges,
            "reference_frequencies": np.round(ref_counts / ref_counts.sum(), 6).tolist(),
            "window_frequencies": np.round(window, 6).tolist(),
            "window_counts": feature.counts.tolist(),
        }
