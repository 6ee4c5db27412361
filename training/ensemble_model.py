"""Several forecasters as one module: each reads its own context length, an L-estimator combines them.

The combination lives in the module, so the exported ONNX graph is the whole ensemble and V2
clients, Triton and the service's batcher all see one model with v1's input and output.

* Member ``i`` sees the last ``context_lengths[i]`` values of the input (all of them when the
  input is shorter); every member accepts anything from the ensemble's minimum length up.
* Per horizon step and quantile the members' values are sorted and combined with fixed
  non-negative weights over the order statistics: the median, a trimmed mean or the mean.
  Any such combination of quantile vectors that are each monotone is monotone too: the k-th
  smallest of the members' q-values cannot exceed the k-th smallest of their q'-values when
  q < q', and a non-negative weighted sum of non-decreasing sequences is non-decreasing.
* ``interval_scale`` then widens or narrows every quantile's distance from the combined median
  by one positive factor chosen on the validation holdout; a positive factor keeps the order.
"""

from __future__ import annotations

import torch
from torch import nn

from training.models import LSTMForecaster


def order_weights(members: int, combiner: str) -> list[float]:
    """Weights over the sorted members: ``median``, ``mean`` or ``trim<k>`` (drop k at each end)."""
    if combiner == "mean":
        return [1.0 / members] * members
    if combiner == "median":
        mid = members // 2
        if members % 2:
            return [1.0 if i == mid else 0.0 for i in range(members)]
        return [0.5 if i in (mid - 1, mid) else 0.0 for i in range(members)]
    if combiner.startswith("trim"):
        k = int(combiner.removeprefix("trim"))
        if not 0 < 2 * k < members:
            raise ValueError(f"{combiner} needs more than {2 * k} members, got {members}")
        kept = members - 2 * k
        return [1.0 / kept if k <= i < members - k else 0.0 for i in range(members)]
    raise ValueError(f"unknown combiner {combiner!r}")


def combine(stacked: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """stacked [M, B, H, Q] -> [B, H, Q]: weighted sum of the order statistics over M."""
    ordered, _ = torch.sort(stacked, dim=0)
    return (ordered * weights.view(-1, 1, 1, 1)).sum(dim=0)


def rescale_intervals(q: torch.Tensor, median_index: int, scale: float) -> torch.Tensor:
    median = q[:, :, median_index : median_index + 1]
    return median + scale * (q - median)


class ForecastEnsemble(nn.Module):
    def __init__(
        self,
        members: list[LSTMForecaster],
        context_lengths: list[int],
        combiner: str,
        interval_scale: float = 1.0,
    ) -> None:
        super().__init__()
        if len(members) != len(context_lengths) or not members:
            raise ValueError("one context length per member, and at least one member")
        if interval_scale <= 0:
            raise ValueError("interval_scale must be positive to keep the quantiles in order")
        self.members = nn.ModuleList(members)
        self.context_lengths = list(context_lengths)
        self.combiner = combiner
        self.interval_scale = float(interval_scale)
        self.median_index = members[0].median_index
        self.weights: torch.Tensor
        self.register_buffer("weights", torch.tensor(order_weights(len(members), combiner)), persistent=False)

    @property
    def min_context_length(self) -> int:
        return max(m.skip_length for m in self.members if isinstance(m, LSTMForecaster))

    def member_forecasts(self, values: torch.Tensor) -> torch.Tensor:
        """[M, B, H, Q] raw-unit quantiles of every member."""
        outs = [
            member(values[:, -length:])
            for member, length in zip(self.members, self.context_lengths, strict=True)
        ]
        return torch.stack(outs, dim=0)

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        """values: raw series [B, T], T >= min_context_length; returns raw-unit quantiles [B, H, Q]."""
        q = combine(self.member_forecasts(values), self.weights)
        if self.interval_scale == 1.0:
            return q
        return rescale_intervals(q, self.median_index, self.interval_scale)
