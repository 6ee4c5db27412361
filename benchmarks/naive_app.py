"""The naive baseline: how the usual PyTorch/Keras tutorial serves a model.

FastAPI, the forecaster's PyTorch weights (``torch_state.pt``), eager ``model(x)`` right inside
``async def``: one request at a time (the call blocks the event loop), no batching, no ONNX Runtime.
Same request and response shape as ``POST /v1/forecast``.

    python -m uvicorn benchmarks.naive_app:app --port 8001
    (NAIVE_MODEL_DIR picks the version folder; default models/m4-hourly/1)
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import torch
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

from training.forecast_train import ForecastConfig, build_model

MODEL_DIR = Path(os.environ.get("NAIVE_MODEL_DIR", "models/m4-hourly/1"))


def load(version_dir: Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    manifest = json.loads((version_dir / "model.json").read_text())
    known = {f.name for f in dataclasses.fields(ForecastConfig)}
    config = {k: v for k, v in manifest["training"]["config"].items() if k in known}
    config["quantiles"] = tuple(config["quantiles"])
    model = build_model(ForecastConfig(**config))
    model.load_state_dict(torch.load(version_dir / "torch_state.pt", map_location="cpu"))
    model.eval()
    return model, manifest


MODEL, MANIFEST = load(MODEL_DIR)
PARAMS: dict[str, Any] = MANIFEST["parameters"]
app = FastAPI(title="naive baseline")


class SeriesIn(BaseModel):
    id: str | None = None
    values: list[float]


class ForecastRequest(BaseModel):
    model: str | None = None
    horizon: int | None = None
    quantiles: list[float] | None = None
    series: list[SeriesIn]


@app.post("/v1/forecast")
async def forecast(req: ForecastRequest) -> dict[str, Any]:
    horizon = req.horizon or PARAMS["horizon"]
    wanted = req.quantiles or PARAMS["quantiles"]
    columns = [PARAMS["quantiles"].index(q) for q in wanted]
    median = PARAMS["quantiles"].index(0.5)
    forecasts = []
    for i, s in enumerate(req.series):
        if len(s.values) < PARAMS["min_context_length"]:
            raise HTTPException(422, f"series {i} is shorter than {PARAMS['min_context_length']}")
        values = s.values[-PARAMS["context_length"] :]
        with torch.no_grad():
            out = MODEL(torch.tensor([values], dtype=torch.float32))[0, :horizon]  # [H, Q]
        forecasts.append(
            {
                "id": s.id or str(i),
                "point": out[:, median].tolist(),
                "quantiles": {str(q): out[:, c].tolist() for q, c in zip(wanted, columns, strict=True)},
                "context_length_used": len(values),
            }
        )
    return {"model": {"name": MANIFEST["name"], "version": MANIFEST["version"]}, "forecasts": forecasts}


@app.get("/readyz")
async def readyz() -> dict[str, str]:
    return {"status": "ready"}
