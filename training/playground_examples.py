"""Write the playground's M4 example series: ``python -m training.playground_examples``.

The service's playground (``/``) and the API docs' example request need real series, and the service
never reads training/, so a few M4 Hourly series are copied into a small JSON asset next to the page,
with where they came from (file, sha256) and the ground truth of their 48-step test window.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

from training.series_io import load_m4_wide

REPO = Path(__file__).resolve().parents[1]
M4_DIR = REPO / "training" / "data" / "m4"
EXAMPLES_DIR = REPO / "service" / "http" / "static" / "examples"
OUT = EXAMPLES_DIR / "m4_hourly.json"
MNIST_OUT = EXAMPLES_DIR / "mnist_digit.json"
MNIST_DIR = REPO / "training" / "data" / "mnist"
MNIST_INDEX = 0  # the first test image (a 7)
# Chosen by eye for variety: a daily cycle with trend, a noisy one, a weekly pattern, a level shift.
SERIES_IDS = ("H1", "H10", "H105", "H150", "H200", "H344")
HISTORY = 336  # the committed forecaster's context_length


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build() -> dict[str, object]:
    train_csv, test_csv = M4_DIR / "Hourly-train.csv", M4_DIR / "Hourly-test.csv"
    train, test = load_m4_wide(train_csv), load_m4_wide(test_csv)
    series = [
        {
            "id": sid,
            "history": [float(v) for v in train[sid][-HISTORY:]],
            "truth": [float(v) for v in test[sid]],
            "history_offset": int(len(train[sid]) - HISTORY),
        }
        for sid in SERIES_IDS
    ]
    return {
        "source": {
            "dataset": "M4 competition, Hourly (Makridakis, Spiliotis & Assimakopoulos, 2020)",
            "provenance": "training/data/README.md",
            "files": {
                "training/data/m4/Hourly-train.csv": _sha256(train_csv),
                "training/data/m4/Hourly-test.csv": _sha256(test_csv),
            },
            "note": f"history = the last {HISTORY} training values; truth = the 48 test values that follow",
            "command": "python -m training.playground_examples",
        },
        "series": series,
    }


def mnist_digit() -> dict[str, object]:
    """One MNIST test image as 28 rows of 28 pixels (0-255), read from the IDX files without numpy."""
    images, labels = MNIST_DIR / "t10k-images-idx3-ubyte.gz", MNIST_DIR / "t10k-labels-idx1-ubyte.gz"
    with gzip.open(images) as fh:
        raw = fh.read()
    start = 16 + MNIST_INDEX * 28 * 28
    rows = [list(raw[start + r * 28 : start + (r + 1) * 28]) for r in range(28)]
    with gzip.open(labels) as fh:
        label = fh.read()[8 + MNIST_INDEX]
    return {
        "source": {
            "dataset": "MNIST test set (LeCun, Cortes & Burges)",
            "files": {f"training/data/mnist/{p.name}": _sha256(p) for p in (images, labels)},
            "index": MNIST_INDEX,
            "command": "python -m training.playground_examples",
        },
        "label": int(label),
        "rows": rows,
    }


def main() -> None:
    OUT.parent.mkdir(parents=True, exist_ok=True)
    for path, content in ((OUT, build()), (MNIST_OUT, mnist_digit())):
        path.write_text(json.dumps(content, separators=(",", ":")) + "\n")
        print(f"wrote {path.relative_to(REPO)} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
