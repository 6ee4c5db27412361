from pathlib import Path

import numpy as np
import pytest

from training.series_io import load_long_csv, load_m4_wide

M4 = Path(__file__).resolve().parents[2] / "training/data/m4"


def test_m4_wide_reads_all_hourly_series_with_ragged_lengths():
    train = load_m4_wide(M4 / "Hourly-train.csv")
    test = load_m4_wide(M4 / "Hourly-test.csv")
    assert list(train) == list(test)
    assert len(train) == 414
    lengths = {len(v) for v in train.values()}
    assert min(lengths) == 700 and max(lengths) == 960
    assert all(len(v) == 48 for v in test.values())
    assert train["H1"][:3].tolist() == [605.0, 586.0, 586.0]
    assert all(np.isfinite(v).all() for v in train.values())


def test_long_csv_sorts_by_timestamp_and_groups_series(tmp_path: Path):
    path = tmp_path / "long.csv"
    path.write_text(
        "series_id,timestamp,value\n"
        "b,2024-01-01T01:00,4\n"
        "a,2024-01-01T01:00,2\n"
        "a,2024-01-01T00:00,1\n"
        "b,2024-01-01T00:00,3\n"
    )
    series = load_long_csv(path)
    assert list(series) == ["b", "a"]
    assert series["a"].tolist() == [1.0, 2.0]
    assert series["b"].tolist() == [3.0, 4.0]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("series_id,timestamp\na,1\n", "missing columns"),
        ("series_id,timestamp,value\na,1,nan\n", "non-finite"),
        ("series_id,timestamp,value\na,1,1\na,1,2\n", "duplicated timestamps"),
    ],
)
def test_long_csv_refuses_what_it_would_otherwise_silently_mangle(tmp_path: Path, body: str, message: str):
    path = tmp_path / "bad.csv"
    path.write_text(body)
    with pytest.raises(ValueError, match=message):
        load_long_csv(path)
