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


class BiLSTMSentiment(nn.Module):
    """Embedding, bidirectional LSTM, masked pooling, linear to class probabilities.

    Padding cannot change an answer. Rows are right-padded and ``lengths`` says how many ids of
    each row are real:

    * the forward LSTM reads the row as is; its outputs at real positions never see padding;
    * the backward direction is a second forward-only LSTM over each row reversed *within its
      length* (padding stays at the end), so it also never sees padding;
    * features are the last real output of each direction plus max and mean pooling over real
      positions only. Pooling is order-free, so the reversed outputs need no re-alignment.

    Both LSTMs are plain unidirectional ``nn.LSTM``s, which the legacy ONNX exporter turns into
    fused ``LSTM`` nodes with dynamic batch and time axes. A length of 0 counts as 1 (one [PAD]),
    and lengths beyond the row width are clipped to it.
    """

    def __init__(
        self,
        vocab_size: int,
        embed_dim: int = 384,
        hidden_size: int = 256,
        num_classes: int = 2,
        dropout: float = 0.3,
        pad_id: int = 0,
    ) -> None:
        super().__init__()
        self.pad_id = pad_id
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        self.fwd = nn.LSTM(embed_dim, hidden_size, batch_first=True)
        self.bwd = nn.LSTM(embed_dim, hidden_size, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(6 * hidden_size, num_classes)

    def logits(self, input_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """input_ids int64 [B, T] right-padded; lengths int64 [B]; returns logits [B, C]."""
        # Tensor ops only (no Python ints from shapes), so the exported graph stays dynamic.
        positions = torch.cumsum(torch.ones_like(input_ids), dim=1) - 1  # [B, T]: 0..T-1
        lengths = torch.minimum(lengths.clamp(min=1), positions[:, -1] + 1).unsqueeze(1)  # [B, 1]
        valid = positions < lengths
        reversed_index = torch.where(valid, lengths - 1 - positions, positions)
        ids_rev = input_ids.gather(1, reversed_index)
        out_f, _ = self.fwd(self.dropout(self.embedding(input_ids)))
        out_b, _ = self.bwd(self.dropout(self.embedding(ids_rev)))
        mask = valid.unsqueeze(-1)
        last = (lengths - 1).unsqueeze(-1).expand(-1, -1, out_f.shape[-1])
        feats = []
        for out in (out_f, out_b):
            feats.append(out.gather(1, last).squeeze(1))
            feats.append(out.masked_fill(~mask, -2.0).amax(dim=1))  # LSTM outputs lie in (-1, 1)
            feats.append((out * mask.to(out.dtype)).sum(dim=1) / lengths.to(out.dtype))
        logits: torch.Tensor = self.head(self.dropout(torch.cat(feats, dim=1)))
        return logits

    def forward(self, input_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Class probabilities FP32 [B, C] (softmax inside, so raw-ONNX clients get probabilities)."""
        return torch.softmax(self.logits(input_ids, lengths), dim=-1)


class CharLSTM(nn.Module):
    """Character-level LSTM language model with explicit state in and out.

    ``forward`` is the served graph: token ids ``[B, T]`` and state ``h``, ``c`` ``[L, B, H]`` in;
    the logits of the *last* step ``[B, V]`` and the new state out. The same graph serves prompt
    prefill (T = prompt length) and decoding (T = 1). ``step_logits`` returns every step's logits
    for training and scoring.
    """

    def __init__(
        self,
        vocab_size: int,
        embed_dim: int = 128,
        hidden_size: int = 512,
        num_layers: int = 2,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.lstm = nn.LSTM(
            embed_dim, hidden_size, num_layers, batch_first=True, dropout=dropout if num_layers > 1 else 0.0
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, vocab_size)

    def step_logits(
        self, tokens: torch.Tensor, h: torch.Tensor, c: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Logits of every step ``[B, T, V]`` and the final state."""
        out, (h_out, c_out) = self.lstm(self.embedding(tokens), (h, c))
        logits: torch.Tensor = self.head(self.dropout(out))
        return logits, h_out, c_out

    def forward(
        self, tokens: torch.Tensor, h: torch.Tensor, c: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out, (h_out, c_out) = self.lstm(self.embedding(tokens), (h, c))
        logits: torch.Tensor = self.head(out[:, -1, :])
        return logits, h_out, c_out

    def zero_state(self, batch: int, device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (self.num_layers, batch, self.hidden_size)
        return torch.zeros(shape, device=device), torch.zeros(shape, device=device)


class RowLSTMClassifier(nn.Module):
    """Classifies a sequence of feature vectors (MNIST: 28 rows of 28 raw 0-255 pixels) from the LSTM's
    last hidden state.

    Scaling to the training distribution and the softmax live inside the module, so the exported
    graph takes raw values and returns probabilities.
    """

    def __init__(
        self,
        feature_size: int = 28,
        num_classes: int = 10,
        hidden_size: int = 128,
        num_layers: int = 2,
        dropout: float = 0.1,
        value_scale: float = 255.0,
        mean: float = 0.1307,
        std: float = 0.3081,
    ) -> None:
        super().__init__()
        self.value_scale = value_scale
        self.mean = mean
        self.std = std
        self.lstm = nn.LSTM(
            feature_size,
            hidden_size,
            num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, num_classes)

    def logits(self, sequences: torch.Tensor) -> torch.Tensor:
        """sequences FP32 [B, T, F] in raw units; returns logits [B, C]."""
        x = (sequences / self.value_scale - self.mean) / self.std
        _, (h_n, _) = self.lstm(x)
        logits: torch.Tensor = self.head(self.dropout(h_n[-1]))
        return logits

    def forward(self, sequences: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.logits(sequences), dim=-1)


class NextStepLSTM(nn.Module):
    """A small one-step-ahead LSTM over standardized values: the repository's generic ONNX example.

    It is served as a plain tensor model (``"task": "tensor"``): x [batch, time, 1] in, y [batch, 1] out,
    with no seqserve-specific pre- or post-processing, as a user's own ONNX LSTM would be.
    """

    def __init__(self, hidden_size: int = 32) -> None:
        super().__init__()
        self.lstm = nn.LSTM(1, hidden_size, batch_first=True)
        self.head = nn.Linear(hidden_size, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        last: torch.Tensor = self.head(out[:, -1, :])
        return last
