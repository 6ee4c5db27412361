"""Example requests for the OpenAPI document, so "Try it out" in /docs sends something that works.

The forecast example is a real M4 Hourly series (the playground's asset, static/examples/m4_hourly.json,
written by ``python -m training.playground_examples``): a made-up series shorter than the model's
min_context_length would only demonstrate a 422.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

EXAMPLES_FILE = Path(__file__).parent / "static" / "examples" / "m4_hourly.json"


def _first_m4_series() -> dict[str, Any]:
    series = json.loads(EXAMPLES_FILE.read_text())["series"][0]
    return {"id": series["id"], "values": series["history"]}


FORECAST_REQUEST: dict[str, Any] = {
    "model": "m4-hourly",
    "horizon": 48,
    "quantiles": [0.1, 0.5, 0.9],
    "series": [_first_m4_series()],
}
SENTIMENT_REQUEST: dict[str, Any] = {
    "model": "sst2-bilstm",
    "texts": [
        "A gripping, beautifully acted film.",
        "Two hours of my life I will never get back.",
    ],
}
