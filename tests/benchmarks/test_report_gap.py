"""The 12.1 decomposition line of the bench report, computed from a run's own numbers."""

from __future__ import annotations

from typing import Any

from benchmarks import report


def _results() -> dict[str, Any]:
    return {
        "meta": {"cpu_count": 2},
        "phases": {
            "on_c64": {
                "label": "1 series/req, batching on", "connections": 64, "requests": 50_000,
                "rows_per_s": 5_000.0, "ort_thread_cpu_seconds": 15.0, "wrk_cpu_cores": 0.1,
                "server_cpu_ms_per_request_outside_ort": 0.12,
            }
        },
        "layout_ceiling": {
            "processes": 2, "best_batch": 16, "rows_per_s": 8_000.0,
            "points": [
                {"batch": 4, "rows_per_s_median": 7_400.0}, {"batch": 16, "rows_per_s_median": 8_000.0}
            ],
        },
    }  # fmt: skip


def test_gap_line_reports_ort_per_row_against_the_ceilings_loop_and_the_ratio_without_the_rest() -> None:
    line = report.gap_12_1(_results())
    assert line is not None
    # 15 s of batch-thread CPU over 50,000 rows; the ceiling's 2 processes at 7,400 and 8,000 rows/s.
    assert "session.run 0.300 core-ms/row" in line
    assert "0.270 at batch 4, 0.250 at its best batch 16" in line
    assert "the rest of the server 0.120 core-ms/request" in line
    # (2 cores - 0.1 for wrk) / 0.3 ms per row = 6,333 rows/s, over the ceiling's 8,000.
    assert line.endswith("the ratio would be 0.79.")


def test_gap_line_is_left_out_without_the_phase_or_the_ceiling() -> None:
    results = _results()
    del results["layout_ceiling"]
    assert report.gap_12_1(results) is None
    assert report.gap_12_1({"meta": {"cpu_count": 2}, "phases": {}}) is None
