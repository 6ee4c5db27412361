"""The character LSTM's data and training loop: seeded, device-agnostic, truncated BPTT.

Training reads ``batch_size`` contiguous tracks of the training text side by side and carries the
LSTM state from one ``bptt``-step window to the next (detached), so the model learns from context
longer than one window at the cost of one window's backward pass. Each pass over the tracks starts
at a new seeded offset, so window boundaries move between passes.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F  # noqa: N812

from training.models import CharLSTM

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TextgenConfig:
    embed_dim: int = 128
    hidden_size: int = 512
    num_layers: int = 2
    dropout: float = 0.1
    batch_size: int = 64
    bptt: int = 64
    # The run stops at ``steps`` or when ``max_train_seconds`` is spent, whichever comes first; the
    # learning-rate schedule follows whichever is further along, so a slow (shared) machine still
    # ends with a fully decayed learning rate instead of being cut off mid-schedule.
    steps: int = 6000
    max_train_seconds: float = 1980.0
    learning_rate: float = 2e-3
    min_learning_rate: float = 1e-4
    warmup_steps: int = 50
    weight_decay: float = 0.0
    clip_norm: float = 1.0
    train_fraction: float = 0.9
    eval_every: int = 250
    progress_eval_chars: int = 5000
    # bfloat16 autocast for the forward pass (fp32 master weights): about half the CPU time per step
    # on a CPU with AMX/AVX512-BF16 (measured: 0.55 vs 1.15 CPU-s per 64x64 step at hidden 512).
    bf16_autocast: bool = True
    # 0 = torch's default (one per core). On a shared, oversubscribed machine 1 is faster: two OpenMP
    # threads wait on each other whenever either is descheduled.
    torch_threads: int = 0
    seed: int = 1234

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class CharData:
    chars: list[str]
    train: np.ndarray  # int64 ids
    valid: np.ndarray
    boundary: int


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_text(path: Path, train_fraction: float) -> CharData:
    """Split by position; the vocabulary is the training part's characters in code-point order."""
    text = path.read_text(encoding="utf-8")
    boundary = int(train_fraction * len(text))
    chars = sorted(set(text[:boundary]))
    missing = sorted(set(text[boundary:]) - set(chars))
    if missing:
        raise ValueError(f"validation characters absent from training: {missing}")
    index = {ch: i for i, ch in enumerate(chars)}
    ids = np.fromiter((index[ch] for ch in text), dtype=np.int64, count=len(text))
    return CharData(chars=chars, train=ids[:boundary], valid=ids[boundary:], boundary=boundary)


def unigram_nats(train: np.ndarray, valid: np.ndarray, vocab_size: int) -> float:
    """Cross-entropy of the validation text under add-one-smoothed training character frequencies."""
    counts = np.bincount(train, minlength=vocab_size).astype(np.float64) + 1.0
    logp = np.log(counts / counts.sum())
    return float(-logp[valid[1:]].mean())


def stream_nats(model: CharLSTM, ids: np.ndarray, device: torch.device, chunk: int = 4096) -> float:
    """Mean nats/char of ``ids[1:]`` given everything before, one stream from the zero state."""
    model.eval()
    h, c = model.zero_state(1, device)
    x = torch.from_numpy(ids).to(device)
    total, count = 0.0, 0
    with torch.no_grad():
        for s in range(0, len(ids) - 1, chunk):
            inp = x[s : min(s + chunk, len(ids) - 1)].unsqueeze(0)
            tgt = x[s + 1 : s + 1 + inp.shape[1]]
            logits, h, c = model.step_logits(inp, h, c)
            total += float(F.cross_entropy(logits[0], tgt, reduction="sum"))
            count += int(tgt.numel())
    return total / count


def build_model(cfg: TextgenConfig, vocab_size: int) -> CharLSTM:
    return CharLSTM(vocab_size, cfg.embed_dim, cfg.hidden_size, cfg.num_layers, cfg.dropout)


def learning_rate(cfg: TextgenConfig, step: int, elapsed: float = 0.0) -> float:
    """Linear warm-up, then cosine decay to ``min_learning_rate`` at the end of the step or time budget."""
    if step < cfg.warmup_steps:
        return cfg.learning_rate * (step + 1) / cfg.warmup_steps
    progress = max(
        (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps), elapsed / cfg.max_train_seconds
    )
    cos = 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return cfg.min_learning_rate + (cfg.learning_rate - cfg.min_learning_rate) * cos


def train_textgen(data: CharData, cfg: TextgenConfig) -> tuple[CharLSTM, dict[str, object]]:
    torch.manual_seed(cfg.seed)
    if cfg.torch_threads:
        torch.set_num_threads(cfg.torch_threads)
    rng = np.random.default_rng(cfg.seed)
    device = pick_device()
    model = build_model(cfg, len(data.chars)).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    train = torch.from_numpy(data.train).to(device)
    track_len = (len(data.train) - 1 - cfg.bptt) // cfg.batch_size
    windows = track_len // cfg.bptt
    log.info(
        "training on %s (%d threads): %d train / %d valid chars, vocab %d, %d steps of %dx%d, "
        "%d windows/pass",
        device,
        torch.get_num_threads(),
        len(data.train),
        len(data.valid),
        len(data.chars),
        cfg.steps,
        cfg.batch_size,
        cfg.bptt,
        windows,
    )
    history: list[dict[str, float]] = []
    start = time.monotonic()
    recent: list[float] = []
    window = windows
    h, c = model.zero_state(cfg.batch_size, device)
    starts = torch.zeros(cfg.batch_size, dtype=torch.int64, device=device)
    offsets = torch.arange(cfg.bptt + 1, device=device)
    done = 0
    for step in range(cfg.steps):
        elapsed = time.monotonic() - start
        if elapsed >= cfg.max_train_seconds:
            log.info("time budget of %.0fs spent after %d steps", cfg.max_train_seconds, step)
            break
        if window == windows:  # a new pass: new offset, fresh state
            offset = int(rng.integers(0, cfg.bptt))
            starts = offset + torch.arange(cfg.batch_size, device=device) * track_len
            h, c = model.zero_state(cfg.batch_size, device)
            window = 0
        batch = train[(starts + window * cfg.bptt).unsqueeze(1) + offsets]  # [B, bptt + 1]
        window += 1
        for group in opt.param_groups:
            group["lr"] = learning_rate(cfg, step, elapsed)
        model.train()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.bf16_autocast):
            logits, h, c = model.step_logits(batch[:, :-1], h.detach(), c.detach())
        h, c = h.float(), c.float()
        loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_norm)
        opt.step()
        recent.append(float(loss.detach()))
        done = step + 1
        if done % cfg.eval_every == 0 or done == cfg.steps or done == 10:
            probe = stream_nats(model, data.valid[: cfg.progress_eval_chars], device)
            elapsed = time.monotonic() - start
            history.append(
                {
                    "step": done,
                    "train_loss": float(np.mean(recent)),
                    "valid_prefix_nats": probe,
                    "seconds": elapsed,
                }
            )
            log.info(
                "step %5d/%d  train %.4f  valid[:%d] %.4f  lr %.2e  elapsed %5.0fs  ETA %5.0fs",
                done,
                cfg.steps,
                np.mean(recent),
                cfg.progress_eval_chars,
                probe,
                learning_rate(cfg, step, elapsed),
                elapsed,
                min(elapsed / done * (cfg.steps - done), cfg.max_train_seconds - elapsed),
            )
            recent = []
    train_seconds = time.monotonic() - start
    model.to("cpu").eval()
    report: dict[str, object] = {
        "device": device.type,
        "torch_threads": torch.get_num_threads(),
        "steps": done,
        "stopped_by": "steps" if done == cfg.steps else "max_train_seconds",
        "characters_seen": done * cfg.batch_size * cfg.bptt,
        "train_seconds": round(train_seconds, 1),
        "history": history,
    }
    return model, report
