from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch

from training.export import export_onnx, ort_session, parity
from training.forecast_pipeline import M4_TRAIN, parity_cases
from training.forecast_train import ForecastConfig, build_model
from training.models import LSTMForecaster
from training.series_io import load_m4_wide


def _export_tiny(tmp_path: Path) -> tuple[LSTMForecaster, Path]:
    torch.manual_seed(0)
    model = LSTMForecaster(
        horizon=6, quantiles=(0.1, 0.5, 0.9), season_length=4, skip_length=8, hidden_size=8
    )
    torch.nn.init.normal_(model.decoder[-1].weight, std=0.3)
    path = tmp_path / "tiny.onnx"
    example = (torch.rand(2, 12) + 1,)
    export_onnx(
        model,
        example,
        path,
        ["values"],
        ["quantiles"],
        {"values": {0: "batch", 1: "time"}, "quantiles": {0: "batch"}},
    )
    return model.eval(), path


def test_export_emits_fused_lstm_with_dynamic_batch_and_time(tmp_path: Path):
    model, path = _export_tiny(tmp_path)
    graph = onnx.load(str(path))
    assert "LSTM" in {n.op_type for n in graph.graph.node}
    dims = graph.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param for d in dims] == ["batch", "time"]
    sess = ort_session(path)
    for batch, length in [(1, 8), (5, 8), (3, 40)]:
        x = (np.random.default_rng(batch).random((batch, length)) * 10 + 1).astype(np.float32)
        got = sess.run(None, {"values": x})[0]
        with torch.no_grad():
            want = model(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_parity_reports_a_real_difference(tmp_path: Path):
    model, path = _export_tiny(tmp_path)
    x = (np.random.default_rng(1).random((3, 10)) * 10 + 1).astype(np.float32)
    assert parity(model, path, [("same", {"values": x})])["max_rel_diff"] < 1e-4
    # Perturb the torch side: the check must notice.
    with torch.no_grad():
        model.decoder[-1].bias += 0.5
    assert parity(model, path, [("perturbed", {"values": x})])["max_abs_diff"] > 1e-2


@pytest.mark.parametrize("batch", [1, 7, 64])
def test_committed_forecaster_matches_its_torch_weights(
    batch: int, forecaster_dir: Path, forecaster_manifest: dict[str, Any]
):
    stored = forecaster_manifest["training"]["config"]
    cfg = ForecastConfig(**{**stored, "quantiles": tuple(stored["quantiles"])})
    model = build_model(cfg)
    model.load_state_dict(torch.load(forecaster_dir / "torch_state.pt", weights_only=True))
    contexts = list(load_m4_wide(M4_TRAIN).values())
    cases = [c for c in parity_cases(contexts, cfg) if c[0].startswith(f"batch{batch}_")]
    assert {c[1]["values"].shape[1] for c in cases} == {cfg.min_context_length, cfg.context_length}
    result = parity(model.eval(), forecaster_dir / "model.onnx", cases)
    assert result["max_rel_diff"] < 1e-4
    recorded = forecaster_manifest["parity"]
    assert recorded["max_rel_diff"] < 1e-4
    assert set(recorded["cases"]) == {f"batch{b}_len{n}" for b in (1, 7, 64) for n in (168, 336)}
