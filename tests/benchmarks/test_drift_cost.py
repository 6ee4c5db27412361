"""The drift cost accounting of ``bin/bench --drift-ab`` (benchmarks/drift_cost.py), on the real monitor."""

from pathlib import Path

import pytest

from benchmarks import drift_cost

REPO = Path(__file__).resolve().parents[2]


def test_share_follows_the_queue_cap():
    costs = {
        "observe_queued_us": 2.0,
        "observe_skipped_us": 1.0,
        "refresh_ms": 10.0,
        "rows_per_refresh": 1000,
        "refresh_seconds": 5.0,
    }
    # 1,000 rows/s x 5 s = 5,000 rows an interval: 1,000 queued, 4,000 skipped, one refresh.
    got = drift_cost.share(costs, rows_per_s=1000.0, server_cpu_cores=1.5)
    monitor_us = (1000 * 2.0 + 4000 * 1.0 + 10_000.0) / 5000
    assert got["monitor_cpu_us_per_row"] == pytest.approx(monitor_us)
    assert got["service_cpu_us_per_row_off"] == pytest.approx(1500.0)
    assert got["share"] == pytest.approx(monitor_us / 1500.0)
    assert got["bound_on_off_ratio"] == pytest.approx(1 / (1 + monitor_us / 1500.0))
    # Below the cap every row is queued: no skipped-row term.
    slow = drift_cost.share(costs, rows_per_s=100.0, server_cpu_cores=0.2)
    assert slow["monitor_cpu_us_per_row"] == pytest.approx((500 * 2.0 + 10_000.0) / 500)


def test_measure_runs_the_real_monitor_of_the_served_forecaster():
    costs = drift_cost.measure(REPO / "models/m4-hourly/1", 336, calls=2000)
    assert costs["observe_queued_us"] > 0 and costs["observe_skipped_us"] > 0 and costs["refresh_ms"] > 0
    assert costs["rows_per_refresh"] == 1000 and costs["refresh_seconds"] == 5.0
