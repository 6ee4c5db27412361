"""Write the playground's M4 example series: ``python -m training.playground_examples``.

The service's playground (``/``) and the API docs' example request need real series, and the service
never reads training/, so a few M4 Hourly series are copied into a small JSON asset next to the page,
with where they came from (file, sha256) and the ground truth of their 48-step test window.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from training.series_io import load_m4_wide

REPO = Path(__file__).resolve().parents[1]
M4_DIR = REPO / "training" / "data" / "m4"
OUT = REPO / "service" / "http" / "static" / "examples" / "m4_hourly.json"
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


def main() -> None:
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(build(), separators=(",", ":")) + "\n")
    print(f"wrote {OUT.relative_to(REPO)} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
