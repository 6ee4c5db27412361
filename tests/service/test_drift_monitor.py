"""Drift features, the window and the monitor, on the committed m4-hourly profile and model."""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from prometheus_client import REGISTRY
from svc_helpers import make_settings

from service.drift import features
from service.drift.extractors import ForecastExtractor, SentimentExtractor
from service.drift.loader import drift_observer
from service.drift.monitor import DriftMonitor, NoDrift
from service.drift.profile import Profile, load_profile
from service.drift.psi import ACT, WATCH
from service.drift.window import RowWindow
from service.runtime.manifest import ManifestError, load_manifest

REPO = Path(__file__).resolve().parents[2]
M4 = REPO / "models" / "m4-hourly" / "1"
M4_DATA = REPO / "training" / "data" / "m4"


def _m4(path: Path) -> list[np.ndarray]:
    rows = [line.split(",")[1:] for line in path.read_text().splitlines()[1:]]
    return [np.array([float(v.strip('"')) for v in row if v.strip('"')]) for row in rows]


@pytest.fixture(scope="module")
def held_out() -> np.ndarray:
    """The last 336 hours of each M4 Hourly series, test period included (never in a reference window)."""
    series = [
        np.concatenate(p)
        for p in zip(_m4(M4_DATA / "Hourly-train.csv"), _m4(M4_DATA / "Hourly-test.csv"), strict=True)
    ]
    return np.stack([s[-336:] for s in series]).astype(np.float32)


@pytest.fixture(scope="module")
def forecaster() -> ort.InferenceSession:
    return ort.InferenceSession(str(M4 / "model.onnx"), providers=["CPUExecutionProvider"])


def _monitor(model: str, version: int = 1, rows: int = 5000, seconds: float = 900.0) -> DriftMonitor:
    profile = load_profile(M4, load_manifest(M4))
    assert profile is not None
    return DriftMonitor(model, version, profile, ForecastExtractor.from_parameters(profile.parameters),
                        rows, seconds, 3600.0)  # fmt: skip


def _gauge(name: str, model: str, feature: str, version: str = "1") -> float | None:
    labels = {"model": model, "version": version, "feature": feature}
    return REGISTRY.get_sample_value(name, labels)


def _feed(monitor: DriftMonitor, session: ort.InferenceSession, rows: np.ndarray) -> None:
    for start in range(0, len(rows), 32):  # request-sized pieces, as the handler queues them
        chunk = rows[start : start + 32]
        monitor.observe(chunk, session.run(None, {"values": chunk})[0])


def test_seasonality_strength_separates_daily_patterns_from_noise() -> None:
    t = np.arange(336)
    daily = 100 + 10 * np.sin(2 * np.pi * t / 24)
    noise = np.random.default_rng(0).normal(100, 10, 336)
    strength = features.seasonality_strength(np.stack([daily, noise, np.full(336, 7.0)]), 24)
    assert strength[0] == pytest.approx(1.0)
    assert strength[1] < 0.15
    assert strength[2] == 0.0  # constant: no variance to explain, and no NaN
    assert features.seasonality_strength(np.ones((2, 30)), 24).tolist() == [0.0, 0.0]


def test_forecast_features_of_an_all_zero_series_are_finite() -> None:
    out = features.forecast_inputs(np.zeros((2, 200), dtype=np.float32), 24)
    assert all(np.isfinite(v).all() for v in out.values())
    assert out["zeros"].tolist() == [1.0, 1.0] and out["length"].tolist() == [200.0, 200.0]
    width = features.forecast_outputs(np.zeros((2, 200)), np.ones((2, 48, 7)), 1, 5)["interval_width"]
    assert width.tolist() == [0.0, 0.0]


def test_forecast_features_in_slices_equal_the_whole_batch(
    held_out: np.ndarray, forecaster: ort.InferenceSession
) -> None:
    # Real contexts and the model's own quantiles, queued as requests of 32 rows and one odd 7-row one.
    rows = held_out[:103]
    observed = [(rows[s : s + 32], forecaster.run(None, {"values": rows[s : s + 32]})[0])
                for s in range(0, 96, 32)]  # fmt: skip
    observed.append((rows[96:], forecaster.run(None, {"values": rows[96:]})[0]))
    profile = load_profile(M4, load_manifest(M4))
    assert profile is not None
    p = profile.parameters
    season, low, high = int(p["season_length"]), int(p["interval_low_index"]), int(p["interval_high_index"])
    whole = ForecastExtractor(season, low, high, chunk_bytes=1 << 30).extract(observed)
    # 10 rows of 336 float64 values per slice: 11 slices, none aligned with a request.
    sliced = ForecastExtractor(season, low, high, chunk_bytes=10 * 336 * 8).extract(observed)
    assert set(whole) == set(ForecastExtractor.names)
    for name in ForecastExtractor.names:
        assert whole[name].shape == (103,)
        np.testing.assert_array_equal(sliced[name], whole[name])


def test_non_ascii_share_by_hand() -> None:
    shares = features.non_ascii_share(["abc", "été", "x日本", ""])
    assert shares.tolist() == pytest.approx([0.0, 2 / 3, 2 / 3, 0.0])
    assert features.non_ascii_share([]).size == 0


def test_sentiment_extractor_counts_unk_per_row_across_requests_of_different_widths() -> None:
    first = (["a b", "c"], np.array([[5, 1], [1, 0]]), [2, 1])
    second = (["déjà vu !"], np.array([[1, 1, 7, 8]]), [4])
    probs = [np.array([[0.9, 0.1], [0.2, 0.8]]), np.array([[0.3, 0.7]])]
    cols = SentimentExtractor(unk_id=1, max_tokens=3).extract([(first, probs[0]), (second, probs[1])])
    assert cols["tokens"].tolist() == [2, 1, 4]
    # Row 3 has 4 tokens, 3 kept (max_tokens), of which the graph sees [1, 1, 7]: 2/3 are [UNK].
    assert cols["unk_share"].tolist() == pytest.approx([0.5, 1.0, 2 / 3])
    assert cols["non_ascii_share"].tolist() == pytest.approx([0.0, 0.0, 2 / 9])
    assert cols["label"].tolist() == [0, 1, 1]


def test_window_is_bounded_in_rows_and_in_time() -> None:
    window = RowWindow(max_rows=5, width=2, max_seconds=10.0)
    assert window.current(0.0)[0].shape == (0, 2)
    window.add(np.arange(8.0).reshape(4, 2), now=0.0)
    window.add(np.arange(6.0).reshape(3, 2) + 100, now=5.0)
    values, age = window.current(6.0)
    assert values.shape == (5, 2) and age == pytest.approx(6.0)
    assert sorted(values[:, 0].tolist()) == [4.0, 6.0, 100.0, 102.0, 104.0]  # the two oldest went
    assert sorted(window.current(12.0)[0][:, 0].tolist()) == [100.0, 102.0, 104.0]  # the t=0 rows aged out
    assert window.current(100.0)[0].shape == (0, 2)


def test_held_out_m4_hourly_stays_quiet_and_x1000_moves_level(
    held_out: np.ndarray, forecaster: ort.InferenceSession
) -> None:
    model = "drift-unit-m4"
    monitor = _monitor(model)
    monitor.refresh()
    assert _gauge("seqserve_input_drift_psi", model, "level") == 0.0  # pre-created, empty window
    _feed(monitor, forecaster, held_out)
    report = monitor.report()
    scores = {f["name"]: f["psi"] for f in report["features"]}
    assert report["window"]["rows"] == len(held_out)
    assert set(scores) == {"level", "cv", "seasonality", "zeros", "length", "interval_width"}
    assert max(scores.values()) < WATCH, scores
    assert _gauge("seqserve_input_drift_psi", model, "level") == pytest.approx(scores["level"], abs=1e-6)
    assert REGISTRY.get_sample_value("seqserve_drift_window_rows", {"model": model, "version": "1"}) == 414

    shifted = _monitor(model + "-x1000")
    _feed(shifted, forecaster, held_out * 1000)
    scores = {f["name"]: f["psi"] for f in shifted.report()["features"]}
    assert scores["level"] >= ACT
    assert scores["length"] < WATCH and scores["zeros"] < WATCH  # the features that did not change
    assert all(math.isfinite(s) for s in scores.values())


def test_window_bounds_apply_to_the_monitor(held_out: np.ndarray, forecaster: ort.InferenceSession) -> None:
    monitor = _monitor("drift-unit-bounds", rows=100, seconds=60.0)
    _feed(monitor, forecaster, held_out)
    # Requests of 32 are queued whole while fewer than 100 rows wait: 4 x 32 = 128 queued, 286 skipped.
    assert monitor.skipped_rows == 414 - 128
    monitor.refresh()
    assert monitor.report()["window"]["rows"] == 100
    report = monitor.report(now=time.monotonic() + 120.0)  # every row is older than 60 s
    assert report["window"]["rows"] == 0
    assert [f["psi"] for f in report["features"]] == [0.0] * 6


def test_a_new_version_takes_over_the_model_series(
    held_out: np.ndarray, forecaster: ort.InferenceSession
) -> None:
    old, new = _monitor("drift-unit-reload", version=1), _monitor("drift-unit-reload", version=2)
    _feed(old, forecaster, held_out[:50])
    old.refresh()
    assert _gauge("seqserve_input_drift_psi", "drift-unit-reload", "level", "1") is not None
    _feed(new, forecaster, held_out[:50])
    new.refresh()
    assert old.retired and not new.retired
    assert _gauge("seqserve_input_drift_psi", "drift-unit-reload", "level", "1") is None
    assert _gauge("seqserve_input_drift_psi", "drift-unit-reload", "level", "2") is not None


def test_loader_off_missing_and_unchecksummed_profiles(tmp_path: Path) -> None:
    manifest = load_manifest(M4)
    off = drift_observer(manifest, M4, make_settings(drift_enabled=False))
    assert isinstance(off, NoDrift) and "disabled" in off.reason
    assert isinstance(drift_observer(manifest, M4, make_settings()), DriftMonitor)

    copy = tmp_path / "1"
    shutil.copytree(M4, copy)
    raw = json.loads((copy / "model.json").read_text())
    del raw["files"]["profile.json"]  # named by drift.profile, but not covered by the checksums
    (copy / "model.json").write_text(json.dumps(raw))
    with pytest.raises(ManifestError, match="not listed"):
        drift_observer(load_manifest(copy), copy, make_settings())
    del raw["drift"]
    (copy / "model.json").write_text(json.dumps(raw))
    none = drift_observer(load_manifest(copy), copy, make_settings())
    assert isinstance(none, NoDrift) and "no drift profile" in none.reason


def test_profile_schema_refuses_inconsistent_bins() -> None:
    good = json.loads((M4 / "profile.json").read_text())
    Profile.model_validate(good)
    bad = json.loads(json.dumps(good))
    bad["features"][0]["counts"] = bad["features"][0]["counts"][:-1]
    with pytest.raises(ValueError, match="counts"):
        Profile.model_validate(bad)
    bad = json.loads(json.dumps(good))
    bad["features"][1]["edges"] = [0.5, 0.2, 0.6, 0.7]
    with pytest.raises(ValueError, match="increasing"):
        Profile.model_validate(bad)


def test_classify_and_generate_extractors_by_hand() -> None:
    from service.drift.extractors import ClassifyExtractor, GenerateExtractor

    images = [np.full((1, 28, 28), 10.0), np.stack([np.zeros((28, 28)), np.full((28, 28), 255.0)])]
    probs = [np.array([[0.1, 0.9]]), np.array([[0.8, 0.2], [0.3, 0.7]])]
    cols = ClassifyExtractor().extract(list(zip(images, probs, strict=True)))
    assert cols["value_mean"].tolist() == [10.0, 0.0, 255.0] and cols["label"].tolist() == [1, 0, 1]
    cols = GenerateExtractor().extract([(np.array([[7, 0]]), None), (np.array([[120, 1]]), None)])
    assert cols["prompt_chars"].tolist() == [7, 120] and cols["oov_rejected"].tolist() == [0, 1]


def test_an_unloaded_version_takes_its_series_with_it() -> None:
    import gc

    first, second = _monitor("drift-unit-gc"), _monitor("drift-unit-gc")
    assert _gauge("seqserve_input_drift_psi", "drift-unit-gc", "level") == 0.0  # created at load
    del first
    gc.collect()
    assert _gauge("seqserve_input_drift_psi", "drift-unit-gc", "level") == 0.0  # the other one is live
    del second
    gc.collect()
    assert _gauge("seqserve_input_drift_psi", "drift-unit-gc", "level") is None
    assert (
        REGISTRY.get_sample_value("seqserve_drift_window_rows", {"model": "drift-unit-gc", "version": "1"})
        is None
    )
