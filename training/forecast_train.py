"""The forecaster's training loop: seeded, device-agnostic, early-stopped on a holdout."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from training.forecast_data import WindowSpec, sample_windows, split_holdout
from training.models import LSTMForecaster

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ForecastConfig:
    horizon: int = 48
    # Two weeks: the weekly cycle is seen twice, which steadies the scale estimate and lets
    # the LSTM compare this week with the last. The minimum is one week, which the decoder's
    # linear skip needs in full.
    context_length: int = 336
    min_context_length: int = 168
    season_length: int = 24
    quantiles: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95)
    hidden_size: int = 64
    num_layers: int = 2
    epochs: int = 40
    windows_per_series: int = 32
    batch_size: int = 256
    learning_rate: float = 3e-3
    weight_decay: float = 1e-5
    patience: int = 10
    seed: int = 1234
    extra: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def build_model(cfg: ForecastConfig) -> LSTMForecaster:
    return LSTMForecaster(
        horizon=cfg.horizon,
        quantiles=cfg.quantiles,
        season_length=cfg.season_length,
        skip_length=cfg.min_context_length,
        hidden_size=cfg.hidden_size,
        num_layers=cfg.num_layers,
    )


def pinball_loss(pred: torch.Tensor, target: torch.Tensor, quantiles: torch.Tensor) -> torch.Tensor:
    """Mean quantile (pinball) loss; pred [B, H, Q], target [B, H]."""
    diff = target.unsqueeze(-1) - pred
    return torch.maximum(quantiles * diff, (quantiles - 1.0) * diff).mean()


def _holdout_score(
    model: LSTMForecaster, contexts: torch.Tensor, holdout: np.ndarray, m: int, fit: list[np.ndarray]
) -> float:
    """Holdout sMAPE/MASE of the median relative to seasonal naive (lower is better, 1 = sNaive)."""
    with torch.no_grad():
        median = model(contexts)[:, :, model.median_index].cpu().numpy().astype(np.float64)
    snaive = np.stack([np.resize(s[-m:], holdout.shape[1]) for s in fit])

    def smape(f: np.ndarray) -> float:
        return float(np.mean(200 * np.abs(holdout - f) / (np.abs(holdout) + np.abs(f))))

    scale = np.array([np.mean(np.abs(s[m:] - s[:-m])) for s in fit])[:, None]

    def mase(f: np.ndarray) -> float:
        return float(np.mean(np.abs(holdout - f) / scale))

    return 0.5 * (smape(median) / smape(snaive) + mase(median) / mase(snaive))


def train_forecaster(
    series: list[np.ndarray], cfg: ForecastConfig
) -> tuple[LSTMForecaster, dict[str, object]]:
    """Train on every series minus its last ``horizon`` points; keep the best holdout epoch."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    device = pick_device()
    spec = WindowSpec(cfg.context_length, cfg.min_context_length, cfg.horizon)
    fit, holdout = split_holdout(series, cfg.horizon)
    usable = [s for s in fit if len(s) >= cfg.context_length + cfg.horizon]
    if not usable:
        raise ValueError("no series is long enough for one training window")
    # Holdout contexts need a full window so every validation row runs at the same length.
    val_idx = [i for i, s in enumerate(fit) if len(s) >= cfg.context_length]
    val_fit = [fit[i] for i in val_idx]
    val_ctx = torch.tensor(
        np.stack([s[-cfg.context_length :] for s in val_fit]), dtype=torch.float32, device=device
    )

    model = build_model(cfg).to(device)
    q = torch.tensor(cfg.quantiles, device=device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    steps_per_epoch = int(np.ceil(len(usable) * cfg.windows_per_series / cfg.batch_size))
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=cfg.learning_rate, total_steps=cfg.epochs * steps_per_epoch, pct_start=0.1
    )
    best_score, best_state, best_epoch, stale = float("inf"), None, 0, 0
    history: list[dict[str, float]] = []
    start = time.monotonic()
    log.info(
        "training on %s: %d series, %d steps/epoch, up to %d epochs",
        device,
        len(usable),
        steps_per_epoch,
        cfg.epochs,
    )
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        ctx, tgt = sample_windows(usable, spec, cfg.windows_per_series, rng)
        order = rng.permutation(len(ctx))
        losses = []
        for b in range(steps_per_epoch):
            idx = order[b * cfg.batch_size : (b + 1) * cfg.batch_size]
            # One length per batch keeps tensors rectangular while covering every length.
            length = int(rng.integers(cfg.min_context_length, cfg.context_length + 1))
            x = torch.from_numpy(ctx[idx, -length:]).to(device)
            y = torch.from_numpy(tgt[idx]).to(device)
            pred, scale = model.scaled_forward(x)
            loss = pinball_loss(pred, y / scale.squeeze(-1), q)
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            losses.append(loss.item())
        model.eval()
        score = _holdout_score(model, val_ctx, holdout[val_idx], cfg.season_length, val_fit)
        elapsed = time.monotonic() - start
        eta = elapsed / epoch * (cfg.epochs - epoch)
        history.append({"epoch": epoch, "train_pinball": float(np.mean(losses)), "holdout_rel_snaive": score})
        log.info(
            "epoch %2d/%d  train pinball %.4f  holdout score vs sNaive %.4f  elapsed %4.0fs  ETA %4.0fs",
            epoch,
            cfg.epochs,
            np.mean(losses),
            score,
            elapsed,
            eta,
        )
        if score < best_score:
            best_score, best_epoch, stale = score, epoch, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            stale += 1
            if stale >= cfg.patience:
                log.info("early stop: no holdout improvement for %d epochs", cfg.patience)
                break
    assert best_state is not None
    model.load_state_dict(best_state)
    model.eval().cpu()
    report = {
        "device": str(device),
        "best_epoch": best_epoch,
        "epochs_run": len(history),
        "holdout_rel_snaive": best_score,
        "train_seconds": round(time.monotonic() - start, 1),
        "history": history,
    }
    return model, report
