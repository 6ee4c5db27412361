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
    ema_decay: float | None = None
    # Both off for the committed v1; available for experiments (see README, Training).
    refit: bool = False
    # Ensemble-member options (training/ensemble_pipeline.py); the defaults are v1's recipe.
    # loss: "pinball", or pinball plus point_loss_weight x an sMAPE or MASE term on the median.
    loss: str = "pinball"
    point_loss_weight: float = 0.25
    recent_fraction: float = 0.0
    recent_span: int = 168
    # "onecycle" (v1) or "step": short warm-up, then x0.3 at 60% and again at 85% of the steps.
    lr_schedule: str = "onecycle"
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


def point_loss(
    kind: str, median: torch.Tensor, target: torch.Tensor, x: torch.Tensor, m: int
) -> torch.Tensor:
    """The extra term on the scaled median: sMAPE, or MAE over the context's seasonal-naive MAE (MASE)."""
    err = (target - median).abs()
    if kind == "smape":
        return (2.0 * err / (target.abs() + median.abs()).clamp_min(1e-3)).mean()
    if kind == "mase":
        scale = (x[:, m:] - x[:, :-m]).abs().mean(dim=1, keepdim=True).clamp_min(1e-3)
        return (err / scale).mean()
    raise ValueError(f"unknown point loss {kind!r}")


def _schedule(
    cfg: ForecastConfig, opt: torch.optim.Optimizer, total: int
) -> torch.optim.lr_scheduler.LRScheduler:
    if cfg.lr_schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=cfg.learning_rate, total_steps=total, pct_start=0.1
        )
    if cfg.lr_schedule != "step":
        raise ValueError(f"unknown lr_schedule {cfg.lr_schedule!r}")
    warmup = max(1, total // 20)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 1.0 if step < 0.6 * total else 0.3 if step < 0.85 * total else 0.09

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


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


@dataclass
class _Phase:
    """One pass of the schedule: the model, optimiser and LR schedule it owns."""

    model: LSTMForecaster
    ema: torch.optim.swa_utils.AveragedModel | None
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LRScheduler
    steps_per_epoch: int


def _new_phase(cfg: ForecastConfig, n_series: int, device: torch.device) -> _Phase:
    torch.manual_seed(cfg.seed)
    model = build_model(cfg).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    steps = int(np.ceil(n_series * cfg.windows_per_series / cfg.batch_size))
    # The schedule always spans cfg.epochs, so a refit stopped at the best epoch retraces
    # exactly the learning-rate path that the holdout phase validated.
    sched = _schedule(cfg, opt, cfg.epochs * steps)
    # An exponential moving average of the weights is what gets validated and shipped: single
    # SGD iterates swing by several percent of holdout score from epoch to epoch on 414 series.
    ema = (
        None
        if cfg.ema_decay is None
        else torch.optim.swa_utils.AveragedModel(
            model,
            multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(cfg.ema_decay),  # type: ignore[no-untyped-call]
        )
    )
    return _Phase(model, ema, opt, sched, steps)


def _train_epoch(
    phase: _Phase, series: list[np.ndarray], cfg: ForecastConfig, rng: np.random.Generator
) -> float:
    device = next(phase.model.parameters()).device
    q = torch.tensor(cfg.quantiles, device=device)
    spec = WindowSpec(cfg.context_length, cfg.min_context_length, cfg.horizon)
    phase.model.train()
    ctx, tgt = sample_windows(series, spec, cfg.windows_per_series, rng, cfg.recent_fraction, cfg.recent_span)
    extra = cfg.loss.removeprefix("pinball").removeprefix("+")
    order = rng.permutation(len(ctx))
    losses = []
    for b in range(phase.steps_per_epoch):
        idx = order[b * cfg.batch_size : (b + 1) * cfg.batch_size]
        # One length per batch keeps tensors rectangular while covering every length.
        length = int(rng.integers(cfg.min_context_length, cfg.context_length + 1))
        x = torch.from_numpy(ctx[idx, -length:]).to(device)
        y = torch.from_numpy(tgt[idx]).to(device)
        pred, scale = phase.model.scaled_forward(x)
        y_scaled = y / scale.squeeze(-1)
        loss = pinball_loss(pred, y_scaled, q)
        if extra:
            median = pred[:, :, phase.model.median_index]
            x_scaled = x / scale.squeeze(-1)
            loss = loss + cfg.point_loss_weight * point_loss(
                extra, median, y_scaled, x_scaled, cfg.season_length
            )
        phase.opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        torch.nn.utils.clip_grad_norm_(phase.model.parameters(), 1.0)
        phase.opt.step()
        phase.sched.step()
        if phase.ema is not None:
            phase.ema.update_parameters(phase.model)
        losses.append(loss.item())
    phase.model.eval()
    return float(np.mean(losses))


def _averaged(phase: _Phase) -> LSTMForecaster:
    """The weights to validate and ship: the EMA when enabled, else the last iterate."""
    if phase.ema is None:
        return phase.model.eval()
    module = phase.ema.module
    assert isinstance(module, LSTMForecaster)
    return module.eval()


def _long_enough(series: list[np.ndarray], cfg: ForecastConfig) -> list[np.ndarray]:
    usable = [s for s in series if len(s) >= cfg.context_length + cfg.horizon]
    if not usable:
        raise ValueError("no series is long enough for one training window")
    return usable


def train_forecaster(
    series: list[np.ndarray], cfg: ForecastConfig
) -> tuple[LSTMForecaster, dict[str, object]]:
    """Pick the epoch count on a holdout, then (if ``cfg.refit``) retrain on all the data.

    Phase 1 trains on every series minus its last ``horizon`` points and scores each epoch
    on those points. Phase 2 retrains from the same seed on the full series for the best
    epoch count: the most recent data matter most for the next 48 hours, and phase 1's
    holdout score is an honest estimate for the refit because the recipe is identical.
    """
    rng = np.random.default_rng(cfg.seed)
    device = pick_device()
    fit, holdout = split_holdout(series, cfg.horizon)
    usable = _long_enough(fit, cfg)
    # Holdout contexts need a full window so every validation row runs at the same length.
    val_idx = [i for i, s in enumerate(fit) if len(s) >= cfg.context_length]
    val_fit = [fit[i] for i in val_idx]
    val_ctx = torch.tensor(
        np.stack([s[-cfg.context_length :] for s in val_fit]), dtype=torch.float32, device=device
    )
    phase = _new_phase(cfg, len(usable), device)
    best_score, best_state, best_epoch, stale = float("inf"), None, 0, 0
    history: list[dict[str, float]] = []
    start = time.monotonic()
    total_epochs = cfg.epochs * (2 if cfg.refit else 1)  # upper bound, for the ETA
    log.info(
        "phase 1 on %s: %d series, %d steps/epoch, up to %d epochs%s",
        device,
        len(usable),
        phase.steps_per_epoch,
        cfg.epochs,
        ", then a refit" if cfg.refit else "",
    )
    for epoch in range(1, cfg.epochs + 1):
        loss = _train_epoch(phase, usable, cfg, rng)
        score = _holdout_score(_averaged(phase), val_ctx, holdout[val_idx], cfg.season_length, val_fit)
        history.append({"epoch": epoch, "train_pinball": loss, "holdout_rel_snaive": score})
        _log_epoch("holdout", epoch, cfg.epochs, loss, start, epoch / total_epochs, score)
        if score < best_score:
            best_score, best_epoch, stale = score, epoch, 0
            best_state = {k: v.detach().clone() for k, v in _averaged(phase).state_dict().items()}
        else:
            stale += 1
            if stale >= cfg.patience:
                log.info("early stop: no holdout improvement for %d epochs", cfg.patience)
                break
    assert best_state is not None
    model = _averaged(phase)
    model.load_state_dict(best_state)
    phase1_seconds = time.monotonic() - start
    if cfg.refit:
        full = _long_enough(series, cfg)
        phase = _new_phase(cfg, len(full), device)
        rng = np.random.default_rng(cfg.seed + 1)
        log.info("phase 2: refit on the full series for %d epochs", best_epoch)
        done = len(history)
        for epoch in range(1, best_epoch + 1):
            loss = _train_epoch(phase, full, cfg, rng)
            frac = (done + epoch) / (done + best_epoch)
            _log_epoch("refit", epoch, best_epoch, loss, start, frac, None)
        model = _averaged(phase)
    model.eval().cpu()
    report = {
        "device": str(device),
        "best_epoch": best_epoch,
        "epochs_run": len(history),
        "holdout_rel_snaive": best_score,
        "refit_on_full_series": cfg.refit,
        "phase1_seconds": round(phase1_seconds, 1),
        "train_seconds": round(time.monotonic() - start, 1),
        "history": history,
    }
    return model, report


def _log_epoch(
    phase: str, epoch: int, of: int, loss: float, start: float, done_fraction: float, score: float | None
) -> None:
    elapsed = time.monotonic() - start
    eta = elapsed / done_fraction - elapsed
    extra = f"  holdout score vs sNaive {score:.4f}" if score is not None else ""
    log.info(
        "%s epoch %2d/%d  train pinball %.4f%s  elapsed %4.0fs  ETA %4.0fs",
        phase,
        epoch,
        of,
        loss,
        extra,
        elapsed,
        eta,
    )
