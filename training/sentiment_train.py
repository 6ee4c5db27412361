"""The sentiment model's training loop: seeded, device-agnostic, best epoch picked on GLUE dev."""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F  # noqa: N812

from training.models import BiLSTMSentiment
from training.text import PAD_ID

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SentimentConfig:
    max_tokens: int = 256
    embed_dim: int = 384
    hidden_size: int = 256
    dropout: float = 0.5
    epochs: int = 4
    batch_size: int = 64
    learning_rate: float = 1.5e-3
    embedding_learning_rate: float = 3e-4
    weight_decay: float = 0.0
    pretrained_embeddings: bool = True
    seed: int = 1234

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def read_tsv(path: Path) -> tuple[list[str], np.ndarray]:
    """``sentence<TAB>label`` with a header row; returns texts and int64 labels."""
    texts, labels = [], []
    with path.open(encoding="utf-8") as fh:
        header = fh.readline().rstrip("\n").split("\t")
        if header != ["sentence", "label"]:
            raise ValueError(f"{path}: expected header sentence<TAB>label, got {header}")
        for line in fh:
            text, label = line.rstrip("\n").rsplit("\t", 1)
            texts.append(text)
            labels.append(int(label))
    return texts, np.asarray(labels, dtype=np.int64)


def build_model(cfg: SentimentConfig, vocab_size: int) -> BiLSTMSentiment:
    return BiLSTMSentiment(
        vocab_size, embed_dim=cfg.embed_dim, hidden_size=cfg.hidden_size, dropout=cfg.dropout, pad_id=PAD_ID
    )


def pad_batch(rows: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(r) for r in rows], dtype=torch.int64)
    ids = torch.full((len(rows), max(1, int(lengths.max()))), PAD_ID, dtype=torch.int64)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r, dtype=torch.int64)
    return ids, lengths


def bucketed_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffle, sort by length within chunks of 50 batches, then shuffle the batches.

    Rows of similar length share a batch, so little time is spent on padding.
    """
    order = rng.permutation(len(lengths))
    chunk = 50 * batch_size
    batches = []
    for s in range(0, len(order), chunk):
        part = order[s : s + chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches += [part[b : b + batch_size] for b in range(0, len(part), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def predict_proba(
    model: BiLSTMSentiment, rows: Sequence[Sequence[int]], device: torch.device, batch_size: int = 256
) -> np.ndarray:
    model.eval()
    out = []
    with torch.no_grad():
        for s in range(0, len(rows), batch_size):
            ids, lengths = pad_batch(rows[s : s + batch_size])
            out.append(model(ids.to(device), lengths.to(device)).cpu().numpy())
    return np.concatenate(out)


def _loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    teacher: torch.Tensor | None,
    idx: np.ndarray,
    gold_weight: float,
) -> torch.Tensor:
    if teacher is None:
        return F.cross_entropy(logits, labels)
    distill = F.mse_loss(logits, teacher[idx].to(logits.device))
    known = labels >= 0
    # A sum over the labelled rows divided by the batch size: a batch of synthetic rows only adds 0.
    gold = F.cross_entropy(logits[known], labels[known], reduction="sum") / len(labels)
    return distill + gold_weight * gold


PROGRESS_EVERY = 1000


def train_sentiment(
    train_rows: list[list[int]],
    train_labels: np.ndarray,
    dev_rows: list[list[int]],
    dev_labels: np.ndarray,
    vocab_size: int,
    cfg: SentimentConfig,
    embeddings: np.ndarray | None,
    teacher_logits: np.ndarray | None = None,
    gold_weight: float = 1.0,
) -> tuple[BiLSTMSentiment, dict[str, object]]:
    """Train for ``cfg.epochs`` and keep the epoch with the best dev accuracy.

    With ``teacher_logits`` [N, C] this is distillation (Tang et al. 2019): the loss is the MSE between
    student and teacher logits on every row, plus ``gold_weight`` times the cross-entropy on the rows
    whose label is known (``train_labels`` < 0 marks a synthetic row that has none).
    """
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    device = pick_device()
    model = build_model(cfg, vocab_size)
    if embeddings is not None:
        with torch.no_grad():
            model.embedding.weight.copy_(torch.from_numpy(embeddings))
            model.embedding.weight[PAD_ID].zero_()
    model.to(device)
    emb_params = list(model.embedding.parameters())
    other = [p for n, p in model.named_parameters() if not n.startswith("embedding.")]
    opt = torch.optim.Adam(
        [
            {"params": emb_params, "lr": cfg.embedding_learning_rate},
            {"params": other, "lr": cfg.learning_rate},
        ],
        weight_decay=cfg.weight_decay,
    )
    lengths = np.array([len(r) for r in train_rows])
    steps_per_epoch = int(np.ceil(len(train_rows) / cfg.batch_size))
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt,
        max_lr=[cfg.embedding_learning_rate, cfg.learning_rate],
        total_steps=cfg.epochs * steps_per_epoch,
        pct_start=0.1,
    )
    labels_t = torch.from_numpy(train_labels)
    teacher_t = None if teacher_logits is None else torch.from_numpy(teacher_logits.astype(np.float32))
    best_acc, best_state, best_epoch = -1.0, copy.deepcopy(model.state_dict()), 0
    history: list[dict[str, float]] = []
    log.info(
        "training on %s: %d rows, %d steps/epoch, %d epochs, vocab %d",
        device,
        len(train_rows),
        steps_per_epoch,
        cfg.epochs,
        vocab_size,
    )
    start = time.monotonic()
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        losses = []
        for idx in bucketed_batches(lengths, cfg.batch_size, rng):
            ids, lens = pad_batch([train_rows[i] for i in idx])
            logits = model.logits(ids.to(device), lens.to(device))
            loss = _loss(logits, labels_t[idx].to(device), teacher_t, idx, gold_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            sched.step()
            with torch.no_grad():
                model.embedding.weight[PAD_ID].zero_()
            losses.append(loss.item())
            # Long transfer sets make an epoch last tens of minutes: log progress within it.
            if len(losses) % PROGRESS_EVERY == 0:
                done = (epoch - 1) * steps_per_epoch + len(losses)
                elapsed = time.monotonic() - start
                log.info(
                    "epoch %d step %d/%d  loss %.4f  elapsed %4.0fs  ETA %4.0fs (without dev checks)",
                    epoch,
                    len(losses),
                    steps_per_epoch,
                    np.mean(losses[-PROGRESS_EVERY:]),
                    elapsed,
                    elapsed / done * (cfg.epochs * steps_per_epoch - done),
                )
        dev_acc = float((predict_proba(model, dev_rows, device).argmax(1) == dev_labels).mean())
        elapsed = time.monotonic() - start
        eta = elapsed / epoch * (cfg.epochs - epoch)
        history.append({"epoch": epoch, "train_loss": float(np.mean(losses)), "dev_accuracy": dev_acc})
        log.info(
            "epoch %2d/%d  train loss %.4f  dev accuracy %.4f  elapsed %4.0fs  ETA %4.0fs",
            epoch,
            cfg.epochs,
            np.mean(losses),
            dev_acc,
            elapsed,
            eta,
        )
        if dev_acc > best_acc:
            best_acc, best_epoch = dev_acc, epoch
            best_state = copy.deepcopy(model.state_dict())
    train_seconds = time.monotonic() - start
    model.load_state_dict(best_state)
    model.to("cpu").eval()
    report: dict[str, object] = {
        "device": device.type,
        "torch_threads": torch.get_num_threads(),
        "best_epoch": best_epoch,
        "epochs_run": cfg.epochs,
        "best_dev_accuracy": best_acc,
        "train_seconds": round(train_seconds, 1),
        "history": history,
    }
    return model, report
