"""LSTM modules. nn.Modules only: the training loop lives in ``forecast_train.py``."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812


class LSTMForecaster(nn.Module):
    """Global multi-horizon quantile forecaster that takes raw values and returns raw units.

    Scaling lives inside the module so the exported ONNX graph is self-contained: a client of
    the plain ``model.onnx`` (Triton, onnxruntime) gets correct forecasts without our Python.

    * Each window is divided by its own mean absolute value, which makes the whole model
      scale-equivariant: forecasting ``1000 * x`` gives ``1000 * forecast(x)``.
    * The median starts from the seasonal-naive forecast (last ``season_length`` values
      repeated) and the network learns a correction; sNaive is already strong on hourly
      data, so this residual form trains in minutes on a CPU.
    * The decoder sees the LSTM's final state and, through a linear skip, the last
      ``skip_length`` scaled values, which is why contexts shorter than that are refused.
    * Quantiles are built outwards from the median with cumulative softplus gaps, so they
      are monotone by construction rather than by sorting after the fact.
    """

    def __init__(
        self,
        horizon: int,
        quantiles: tuple[float, ...],
        season_length: int = 24,
        skip_length: int = 168,
        hidden_size: int = 64,
        num_layers: int = 2,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if list(quantiles) != sorted(quantiles) or 0.5 not in quantiles:
            raise ValueError("quantiles must be increasing and include 0.5")
        self.horizon = horizon
        self.quantiles = quantiles
        self.median_index = quantiles.index(0.5)
        self.season_length = season_length
        self.skip_length = skip_length
        self.lstm = nn.LSTM(
            input_size=1,
            hidden_size=hidden_size,
            num_layers=num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        n_out = horizon * len(quantiles)
        self.decoder = nn.Sequential(
            nn.Linear(hidden_size + skip_length, 4 * hidden_size),
            nn.ReLU(),
            nn.Linear(4 * hidden_size, n_out),
        )
        # Start as exactly seasonal naive with narrow intervals: a safe point to improve from.
        last = self.decoder[-1]
        assert isinstance(last, nn.Linear)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        # Periodic index into the last season, precomputed so export sees a constant.
        self.season_index: torch.Tensor
        self.register_buffer(
            "season_index",
            torch.arange(horizon) % season_length - season_length,
            persistent=False,
        )

    def scaled_forward(self, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (quantiles in scaled units [B, H, Q], scale [B, 1, 1])."""
        scale = values.abs().mean(dim=1, keepdim=True).clamp_min(1e-8)
        x = values / scale
        _, (h_n, _) = self.lstm((x - 1.0).unsqueeze(-1))
        features = torch.cat([h_n[-1], x[:, -self.skip_length :] - 1.0], dim=1)
        raw = self.decoder(features).view(-1, self.horizon, len(self.quantiles))
        seasonal_naive = x[:, self.season_index]
        median = seasonal_naive + raw[:, :, self.median_index]
        gaps = F.softplus(raw - 2.0)  # the -2 offset starts intervals narrow
        m = self.median_index
        above = median.unsqueeze(-1) + torch.cumsum(gaps[:, :, m + 1 :], dim=-1)
        below = median.unsqueeze(-1) - torch.cumsum(gaps[:, :, :m].flip(-1), dim=-1).flip(-1)
        q = torch.cat([below, median.unsqueeze(-1), above], dim=-1)
        return q, scale.unsqueeze(-1)

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        """values: raw series [B, T] with T >= skip_length; returns raw-unit quantiles [B, H, Q]."""
        q, scale = self.scaled_forward(values)
        return q * scale
