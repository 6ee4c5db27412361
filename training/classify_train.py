"""The row-LSTM classifier's training loop: seeded, device-agnostic, epoch chosen on validation."""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch.nn import functional as F  # noqa: N812

from training.mnist_data import MnistSplits
from training.models import RowLSTMClassifier

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClassifyConfig:
    hidden_size: int = 128
    num_layers: int = 2
    dropout: float = 0.1
    epochs: int = 14
    batch_size: int = 128
    learning_rate: float = 2e-3
    min_learning_rate: float = 2e-5
    weight_decay: float = 0.0
    clip_norm: float = 1.0
    warmup_fraction: float = 0.1
    # Training stops after ``epochs`` or when ``max_train_seconds`` is spent; the learning-rate
    # schedule follows whichever is further along, so a slow (shared) machine still ends decayed.
    max_train_seconds: float = 1080.0
    # 0 = torch's default (one per core); 1 is faster on an oversubscribed machine.
    torch_threads: int = 0
    seed: int = 1234

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def learning_rate(cfg: ClassifyConfig, progress: float) -> float:
    """Linear warm-up over ``warmup_fraction`` of training, then cosine decay to ``min_learning_rate``."""
    if progress < cfg.warmup_fraction:
        return cfg.learning_rate * max(progress / cfg.warmup_fraction, 0.01)
    rest = min(1.0, (progress - cfg.warmup_fraction) / (1.0 - cfg.warmup_fraction))
    return cfg.min_learning_rate + (cfg.learning_rate - cfg.min_learning_rate) * 0.5 * (
        1 + math.cos(math.pi * rest)
    )


def build_model(cfg: ClassifyConfig) -> RowLSTMClassifier:
    return RowLSTMClassifier(28, 10, cfg.hidden_size, cfg.num_layers, cfg.dropout)


def predict_proba(
    model: RowLSTMClassifier, images: np.ndarray, device: torch.device, batch_size: int = 1000
) -> np.ndarray:
    model.eval()
    out = []
    with torch.no_grad():
        for s in range(0, len(images), batch_size):
            x = torch.from_numpy(images[s : s + batch_size].astype(np.float32)).to(device)
            out.append(model(x).cpu().numpy())
    return np.concatenate(out)


def train_classifier(data: MnistSplits, cfg: ClassifyConfig) -> tuple[RowLSTMClassifier, dict[str, object]]:
    """Train for ``cfg.epochs`` (or the time budget) and keep the epoch best on validation."""
    torch.manual_seed(cfg.seed)
    if cfg.torch_threads:
        torch.set_num_threads(cfg.torch_threads)
    rng = np.random.default_rng(cfg.seed)
    device = pick_device()
    model = build_model(cfg).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    steps_per_epoch = int(np.ceil(len(data.train_x) / cfg.batch_size))
    total_steps = cfg.epochs * steps_per_epoch
    train_x = torch.from_numpy(data.train_x.astype(np.float32))
    train_y = torch.from_numpy(data.train_y)
    log.info(
        "training on %s (%d threads): %d train / %d valid images, %d steps/epoch, %d epochs",
        device,
        torch.get_num_threads(),
        len(data.train_x),
        len(data.valid_x),
        steps_per_epoch,
        cfg.epochs,
    )
    best_acc, best_state, best_epoch = -1.0, copy.deepcopy(model.state_dict()), 0
    history: list[dict[str, float]] = []
    start = time.monotonic()
    step, out_of_time = 0, False
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        losses = []
        order = torch.from_numpy(rng.permutation(len(data.train_x)))
        for s in range(0, len(order), cfg.batch_size):
            elapsed = time.monotonic() - start
            if elapsed >= cfg.max_train_seconds:
                out_of_time = True
                break
            progress = max(step / total_steps, elapsed / cfg.max_train_seconds)
            for group in opt.param_groups:
                group["lr"] = learning_rate(cfg, progress)
            step += 1
            idx = order[s : s + cfg.batch_size]
            loss = F.cross_entropy(model.logits(train_x[idx].to(device)), train_y[idx].to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_norm)
            opt.step()
            losses.append(float(loss.detach()))
        valid_acc = float((predict_proba(model, data.valid_x, device).argmax(1) == data.valid_y).mean())
        elapsed = time.monotonic() - start
        history.append({"epoch": epoch, "train_loss": float(np.mean(losses)), "valid_accuracy": valid_acc})
        log.info(
            "epoch %2d/%d  step %d  train loss %.4f  valid accuracy %.4f  elapsed %4.0fs  ETA %4.0fs",
            epoch,
            cfg.epochs,
            step,
            np.mean(losses),
            valid_acc,
            elapsed,
            elapsed / epoch * (cfg.epochs - epoch),
        )
        if valid_acc > best_acc:
            best_acc, best_epoch = valid_acc, epoch
            best_state = copy.deepcopy(model.state_dict())
        if out_of_time:
            log.info("time budget of %.0fs spent in epoch %d (step %d)", cfg.max_train_seconds, epoch, step)
            break
    train_seconds = time.monotonic() - start
    model.load_state_dict(best_state)
    model.to("cpu").eval()
    report: dict[str, object] = {
        "device": device.type,
        "torch_threads": torch.get_num_threads(),
        "best_epoch": best_epoch,
        "epochs_run": len(history),
        "steps": step,
        "stopped_by": "max_train_seconds" if out_of_time else "epochs",
        "best_valid_accuracy": best_acc,
        "train_seconds": round(train_seconds, 1),
        "history": history,
    }
    return model, report
