"""Trains and exports the generic-model example: ``python -m training tensor-demo --out models/<n>/<v>``.

The folder it writes holds only ``model.onnx``, as a user's own model would; ``python -m service
describe`` then writes its manifest. The model predicts the next standardized value of an M4 Hourly
window; its hold-out error against the last-value baseline is printed so the example is honest about
being a real (small) model.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch

from training.models import NextStepLSTM
from training.series_io import load_m4_wide

logger = logging.getLogger(__name__)
WINDOW = 48


def _windows(series: list[np.ndarray], count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    while len(xs) < count:
        values = series[int(rng.integers(len(series)))]
        start = int(rng.integers(0, len(values) - WINDOW - 1))
        window = values[start : start + WINDOW + 1]
        mean, std = window[:-1].mean(), window[:-1].std()
        if std <= 0:
            continue
        scaled = (window - mean) / std
        xs.append(scaled[:-1])
        ys.append(scaled[-1:])
    return np.asarray(xs, dtype=np.float32)[..., None], np.asarray(ys, dtype=np.float32)


def train_and_export(out: Path, train_csv: Path, seconds: float = 45.0, seed: int = 1234) -> dict[str, float]:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    series = list(load_m4_wide(train_csv).values())
    train, held_out = series[: int(len(series) * 0.9)], series[int(len(series) * 0.9) :]
    x_val, y_val = _windows(held_out, 2_000, rng)
    model = NextStepLSTM()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    started, steps = time.monotonic(), 0
    while time.monotonic() - started < seconds:
        x, y = _windows(train, 128, rng)
        loss = torch.nn.functional.l1_loss(model(torch.from_numpy(x)), torch.from_numpy(y))
        optimizer.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        steps += 1
    model.eval()
    with torch.no_grad():
        mae = float(torch.nn.functional.l1_loss(model(torch.from_numpy(x_val)), torch.from_numpy(y_val)))
    naive = float(np.abs(x_val[:, -1, :] - y_val).mean())
    out.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        model, (torch.from_numpy(x_val[:2]),), str(out / "model.onnx"), input_names=["x"],
        output_names=["y"], dynamic_axes={"x": {0: "batch", 1: "time"}, "y": {0: "batch"}},
        opset_version=17, dynamo=False,
    )  # fmt: skip
    report = {"steps": float(steps), "held_out_mae": mae, "last_value_mae": naive}
    logger.info("tensor demo: %s", report)
    return report
