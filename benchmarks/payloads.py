"""Request bodies built from real data: M4 Hourly series and SST-2 test sentences."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
M4_TRAIN = REPO_ROOT / "training/data/m4/Hourly-train.csv"
SST_TEST = REPO_ROOT / "training/data/sst2/test_labeled.tsv"


# Distinct request bodies each load phase cycles through (wrk scripts read them round-robin).
BODY_VARIANTS = 64


def load_m4_rows(path: Path = M4_TRAIN) -> list[tuple[str, list[float]]]:
    """(id, values) for every series of the M4 wide CSV, in file order."""
    out = []
    with path.open(newline="") as fh:
        reader = csv.reader(fh)
        next(reader)
        for row in reader:
            out.append((row[0], [float(v) for v in row[1:] if v != ""]))
    return out


def load_m4_series(length: int, path: Path = M4_TRAIN) -> np.ndarray:
    """The last ``length`` values of every series long enough, as FP32 [N, length]."""
    rows = [values[-length:] for _, values in load_m4_rows(path) if len(values) >= length]
    return np.asarray(rows, dtype=np.float32)


def forecast_bodies(length: int, series_per_request: int, count: int, model: str | None = None) -> list[str]:
    """``count`` JSON bodies, each with ``series_per_request`` different real series of ``length`` values.

    ``model`` names the forecaster in every body; without it the service's default answers.
    """
    series = [(sid, v[-length:]) for sid, v in load_m4_rows() if len(v) >= length]
    bodies = []
    for i in range(count):
        chosen = [series[(i * series_per_request + j) % len(series)] for j in range(series_per_request)]
        body: dict[str, object] = {"series": [{"id": sid, "values": values} for sid, values in chosen]}
        if model is not None:
            body["model"] = model
        bodies.append(json.dumps(body, separators=(",", ":")))
    return bodies


def short_reviews(count: int, min_chars: int = 40, max_chars: int = 120, path: Path = SST_TEST) -> list[str]:
    """The first ``count`` test sentences of a typical short-review length."""
    texts = []
    with path.open(encoding="utf-8") as fh:
        next(fh)
        for line in fh:
            text = line.rstrip("\n").rsplit("\t", 1)[0]
            if min_chars <= len(text) <= max_chars:
                texts.append(text)
            if len(texts) == count:
                break
    return texts


def sentiment_bodies(count: int) -> list[str]:
    return [json.dumps({"texts": [t]}, separators=(",", ":")) for t in short_reviews(count)]


def write_lines(path: Path, bodies: list[str]) -> Path:
    if any("\n" in b for b in bodies):
        raise ValueError("a body spans several lines")
    path.write_text("\n".join(bodies) + "\n")
    return path


def v2_binary_records(length: int, series_per_request: int, count: int) -> list[tuple[int, bytes]]:
    """The same series as ``forecast_bodies``, as V2 binary requests: (JSON header length, body)."""
    series = [v[-length:] for _, v in load_m4_rows() if len(v) >= length]
    records = []
    for i in range(count):
        rows = [series[(i * series_per_request + j) % len(series)] for j in range(series_per_request)]
        tensor = np.asarray(rows, dtype="<f4")
        header = json.dumps(
            {
                "inputs": [{"name": "values", "datatype": "FP32", "shape": list(tensor.shape),
                            "parameters": {"binary_data_size": tensor.nbytes}}],
                "parameters": {"binary_data_output": True},
            },
            separators=(",", ":"),
        ).encode()  # fmt: skip
        records.append((len(header), header + tensor.tobytes()))
    return records


def write_v2_records(path: Path, records: list[tuple[int, bytes]]) -> Path:
    with path.open("wb") as fh:
        for header_length, body in records:
            fh.write(f"{header_length} {len(body)}\n".encode())
            fh.write(body)
    return path


def v2_json_bodies(length: int, series_per_request: int, count: int, name: str = "values") -> list[str]:
    """The same series as ``forecast_bodies`` (same order, same numbers), as V2 JSON inference requests."""
    series = [v[-length:] for _, v in load_m4_rows() if len(v) >= length]
    bodies = []
    for i in range(count):
        rows = [series[(i * series_per_request + j) % len(series)] for j in range(series_per_request)]
        tensor = {"name": name, "datatype": "FP32", "shape": [len(rows), length],
                  "data": [x for row in rows for x in row]}  # fmt: skip
        bodies.append(json.dumps({"inputs": [tensor]}, separators=(",", ":")))
    return bodies
