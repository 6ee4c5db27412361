"""Readers for time-series files: the M4 competition's wide CSV and a plain long CSV.

Both return ``{series_id: 1-D float64 array}`` in file order, so the same training and
evaluation code works on M4 and on a user's own data.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

SeriesDict = dict[str, np.ndarray]


def load_m4_wide(path: Path) -> SeriesDict:
    """Read an M4 file: first column is the id, then one value per column, ragged rows padded with ''."""
    out: SeriesDict = {}
    with Path(path).open(newline="") as fh:
        reader = csv.reader(fh)
        next(reader)  # header: "V1","V2",...
        for row in reader:
            values = [float(v) for v in row[1:] if v != ""]
            out[row[0]] = np.asarray(values, dtype=np.float64)
    return out


def load_long_csv(path: Path) -> SeriesDict:
    """Read ``series_id,timestamp,value`` rows (any order) into series sorted by timestamp.

    Timestamps are compared as strings, so they must sort lexically (ISO 8601 does).
    Gaps are not filled: the model sees consecutive observations, so the caller must
    supply regularly spaced data. Duplicated timestamps and non-finite values are errors
    because silently dropping them would shift the seasonality.
    """
    rows: dict[str, list[tuple[str, float]]] = defaultdict(list)
    with Path(path).open(newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {"series_id", "timestamp", "value"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: missing columns {sorted(missing)}")
        for line_no, rec in enumerate(reader, start=2):
            value = float(rec["value"])
            if not math.isfinite(value):
                raise ValueError(f"{path}:{line_no}: non-finite value {rec['value']!r}")
            rows[rec["series_id"]].append((rec["timestamp"], value))
    out: SeriesDict = {}
    for sid, points in rows.items():
        points.sort(key=lambda p: p[0])
        stamps = [p[0] for p in points]
        if len(set(stamps)) != len(stamps):
            raise ValueError(f"{path}: series {sid!r} has duplicated timestamps")
        out[sid] = np.asarray([p[1] for p in points], dtype=np.float64)
    return out
