"""The paired ratio (benchmarks/paired.py): ceiling and load in turn, each load over its neighbours."""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks import paired, report


def test_a_host_that_slows_down_moves_ceiling_and_load_together_and_the_ratio_does_not() -> None:
    # The host's speed at each of the seven alternating measurements: fast, then a slow spell from the
    # second load round on. Only the round that straddles the change is off; the median is not.
    speed = iter([1.0, 1.0, 1.0, 0.8, 0.8, 0.8, 0.8])
    order: list[str] = []

    def ceiling() -> float:
        order.append("ceiling")
        return 7_000.0 * next(speed)

    def load() -> float:
        order.append("load")
        return 4_550.0 * next(speed)  # always 0.65 of the ceiling at the same moment

    measured = paired.paired_ratio(load, ceiling, 3)
    assert order == ["ceiling", "load", "ceiling", "load", "ceiling", "load", "ceiling"]
    assert [round(r["ratio"], 3) for r in measured["rounds"]] == [0.65, 0.578, 0.65]
    assert measured["ratio"] == pytest.approx(0.65)
    assert measured["ceiling_spread"] == pytest.approx(1.25)
    # Against the first ceiling alone, the rounds in the slow spell would have read 0.52.
    assert measured["rounds"][2]["rows_per_s"] / 7_000.0 == pytest.approx(0.52)


def test_at_least_one_round_is_required() -> None:
    with pytest.raises(ValueError):
        paired.paired_ratio(lambda: 1.0, lambda: 1.0, 0)


def _results(paired_forecast: dict[str, Any] | None) -> dict[str, Any]:
    results: dict[str, Any] = {
        "phases": {"on_c64": {"rows_per_s": 4_000.0, "latency_ms": {"p99": 20.0}}},
        "layout_ceiling": {"rows_per_s": 8_000.0},
    }
    if paired_forecast is not None:
        results["paired"] = {"forecast": paired_forecast}
    return results


def test_target_12_1_reads_the_paired_ratio_when_the_run_has_one() -> None:
    rounds = [{"ceiling_before": 7_000.0, "rows_per_s": 4_550.0, "ceiling_after": 7_000.0, "ratio": 0.65}]
    measured = {"connections": 64, "rounds": rounds, "ratio": 0.65, "ceiling_spread": 1.0}
    with_pairs = report.issue12_targets(_results(measured), None)
    without = report.issue12_targets(_results(None), None)
    assert with_pairs[0][0] == without[0][0] == "12.1"
    assert with_pairs[0][2] == 0.65
    assert without[0][2] == 0.5  # the start-of-run ceiling: 4,000 / 8,000
    line = report.paired_lines(
        _results({"connections": 64, "rounds": rounds, "ratio": 0.65, "ceiling_spread": 1.0})
    )
    assert line == [
        "   12.1, paired @64: rows/s over the mean of the layout ceilings measured just before and after each"
        " round: 4,550 / 7,000 = 0.650; median 0.650 (those moved by up to 0%)"
    ]


def test_target_7_reads_the_paired_v2_binary_ratio_when_the_run_has_one() -> None:
    results = _results(None)
    results["phases"]["v2bin_c64"] = {"rows_per_s": 3_800.0}
    unpaired = {t["id"]: t["value"] for t in report.targets(results)}["7"]
    rounds = [{"ceiling_before": 4_000.0, "rows_per_s": 4_200.0, "ceiling_after": 4_400.0, "ratio": 1.0}]
    measured = {"connections": 64, "rounds": rounds, "ratio": 1.0, "ceiling_spread": 1.1}
    results["paired"] = {"v2_binary": measured}
    paired_value = {t["id"]: t["value"] for t in report.targets(results)}["7"]
    assert unpaired == pytest.approx(0.95)  # 3,800 / 4,000, phases minutes apart
    assert paired_value == 1.0
    assert "7, paired @64: rows/s over the mean of the v1 JSON loads" in report.paired_lines(results)[0]
