"""The row-LSTM classifier's training loop: seeded, device-agnostic, epoch chosen on validation."""

from __future__ import annotations

import copy
import logging
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
    epochs: int = 8
    batch_size: int = 128
    learning_rate: float = 2e-3
    min_learning_rate: float = 2e-5
    weight_decay: float = 0.0
    clip_norm: float = 1.0
    seed: int = 1234

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


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
    """Train for ``cfg.epochs`` (one-cycle learning rate) and keep the epoch best on validation."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    device = pick_device()
    model = build_model(cfg).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    steps_per_epoch = int(np.ceil(len(data.train_x) / cfg.batch_size))
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=cfg.learning_rate, total_steps=cfg.epochs * steps_per_epoch, pct_start=0.15
    )
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
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        losses = []
        order = torch.from_numpy(rng.permutation(len(data.train_x)))
        for s in range(0, len(order), cfg.batch_size):
            idx = order[s : s + cfg.batch_size]
            loss = F.cross_entropy(model.logits(train_x[idx].to(device)), train_y[idx].to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_norm)
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
        valid_acc = float((predict_proba(model, data.valid_x, device).argmax(1) == data.valid_y).mean())
        elapsed = time.monotonic() - start
        history.append({"epoch": epoch, "train_loss": float(np.mean(losses)), "valid_accuracy": valid_acc})
        log.info(
            "epoch %2d/%d  train loss %.4f  valid accuracy %.4f  elapsed %4.0fs  ETA %4.0fs",
            epoch,
            cfg.epochs,
            np.mean(losses),
            valid_acc,
            elapsed,
            elapsed / epoch * (cfg.epochs - epoch),
        )
        if valid_acc > best_acc:
            best_acc, best_epoch = valid_acc, epoch
            best_state = copy.deepcopy(model.state_dict())
    train_seconds = time.monotonic() - start
    model.load_state_dict(best_state)
    model.to("cpu").eval()
    report: dict[str, object] = {
        "device": device.type,
        "torch_threads": torch.get_num_threads(),
        "best_epoch": best_epoch,
        "epochs_run": cfg.epochs,
        "best_valid_accuracy": best_acc,
        "train_seconds": round(train_seconds, 1),
        "history": history,
    }
    return model, report
