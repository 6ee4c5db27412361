"""Holdout scoring and the choice of the ensemble's members and combiner (``forecast-ensemble``).

Everything here looks only at the validation holdout: the last ``horizon`` points of each training
series, forecast from the series without them. The test set never enters.
"""

from __future__ import annotations

import itertools
import json
import logging
from pathlib import Path

import numpy as np
import torch

from training.baselines import evaluate_baselines
from training.ensemble_model import ForecastEnsemble, order_weights
from training.m4_metrics import owa, score_forecasts
from training.models import LSTMForecaster

log = logging.getLogger(__name__)

COMBINERS = ("median", "trim1", "trim2", "mean")
INTERVAL_SCALES = tuple(round(0.6 + 0.02 * i, 2) for i in range(51))  # 0.60 .. 1.60
TARGET_COVERAGE = 0.80


def predict(model: torch.nn.Module, contexts: list[np.ndarray], batch: int = 512) -> np.ndarray:
    """Torch forecasts of every context ([N, H, Q]), grouped by length so each batch is rectangular."""
    out: list[np.ndarray | None] = [None] * len(contexts)
    by_length: dict[int, list[int]] = {}
    for i, c in enumerate(contexts):
        by_length.setdefault(len(c), []).append(i)
    with torch.no_grad():
        for idx in by_length.values():
            for start in range(0, len(idx), batch):
                chunk = idx[start : start + batch]
                x = torch.from_numpy(np.stack([contexts[i] for i in chunk]).astype(np.float32))
                for row, i in zip(model(x).numpy(), chunk, strict=True):
                    out[i] = row
    return np.stack([r for r in out if r is not None]).astype(np.float64)


class HoldoutScorer:
    """OWA and 10-90% coverage on the validation holdout, with Naive2 fitted on the shortened series."""

    def __init__(self, fit: list[np.ndarray], holdout: np.ndarray, quantiles: list[float], m: int) -> None:
        self.fit, self.holdout, self.quantiles, self.m = fit, holdout, quantiles, m
        self.naive2 = evaluate_baselines(fit, holdout, holdout.shape[1], m)["naive2"]

    def score(self, pred: np.ndarray) -> dict[str, float]:
        median = pred[:, :, self.quantiles.index(0.5)]
        s = score_forecasts(self.fit, self.holdout, median, self.m)
        lo, hi = pred[:, :, self.quantiles.index(0.1)], pred[:, :, self.quantiles.index(0.9)]
        inside = (self.holdout >= lo) & (self.holdout <= hi)
        return {
            "smape": round(s["smape"], 4),
            "mase": round(s["mase"], 4),
            "owa": round(owa(s["smape"], s["mase"], self.naive2["smape"], self.naive2["mase"]), 4),
            "coverage_0.1_0.9": round(float(inside.mean()), 4),
        }


def combine_numpy(stacked: np.ndarray, combiner: str) -> np.ndarray | None:
    """``ensemble_model.combine`` on member forecasts [M, N, H, Q]; None where the combiner does not apply."""
    try:
        weights = np.asarray(order_weights(len(stacked), combiner))
    except ValueError:
        return None
    return np.tensordot(weights, np.sort(stacked, axis=0), axes=1)


def choose_members(
    stacked: np.ndarray, scorer: HoldoutScorer, min_members: int
) -> tuple[list[int], str, list[dict[str, object]]]:
    """The subset of at least ``min_members`` members and the combiner with the lowest holdout OWA.

    Ties go to more members, then to the earlier combiner in ``COMBINERS``. ``min_members`` equal to
    the number of members keeps them all and chooses only the combiner (v1's rule).
    """
    table: list[dict[str, object]] = []
    m = len(stacked)
    for size in range(min(min_members, m), m + 1):
        for subset in itertools.combinations(range(m), size):
            for name in COMBINERS:
                pred = combine_numpy(stacked[list(subset)], name)
                if pred is not None:
                    table.append({"members": list(subset), "combiner": name, **scorer.score(pred)})

    def key(row: dict[str, object]) -> tuple[float, int, int]:
        members = row["members"]
        assert isinstance(members, list)
        return float(str(row["owa"])), -len(members), COMBINERS.index(str(row["combiner"]))

    best = min(table, key=key)
    members, combiner = best["members"], str(best["combiner"])
    assert isinstance(members, list)
    log.info("holdout: best of %d member subsets x combiners: %s", len(table), best)
    return [int(i) for i in members], combiner, sorted(table, key=key)


def choose_combination(
    members: list[LSTMForecaster],
    lengths: list[int],
    contexts: list[np.ndarray],
    scorer: HoldoutScorer,
    min_members: int | None = None,
) -> tuple[ForecastEnsemble, list[int], dict[str, object]]:
    """Members and combiner with the lowest holdout OWA, then the interval scale closest to 80% coverage.

    Returns the ensemble, the indices of the members it keeps, and the record of the choice.
    """
    stacked = np.stack(
        [predict(m, [c[-n:] for c in contexts]) for m, n in zip(members, lengths, strict=True)]
    )
    keep, combiner, table = choose_members(stacked, scorer, min_members or len(members))
    everyone = [row for row in table if len(row["members"]) == len(members)]  # type: ignore[arg-type]
    by_combiner = {
        str(r["combiner"]): {k: r[k] for k in ("smape", "mase", "owa", "coverage_0.1_0.9")} for r in everyone
    }
    kept, kept_lengths = [members[i] for i in keep], [lengths[i] for i in keep]
    base = predict(ForecastEnsemble(kept, kept_lengths, combiner), contexts)
    mid = scorer.quantiles.index(0.5)
    coverage = {}
    for s in INTERVAL_SCALES:
        scaled = base[:, :, mid : mid + 1] + s * (base - base[:, :, mid : mid + 1])
        coverage[s] = scorer.score(scaled)["coverage_0.1_0.9"]
    scale = min(INTERVAL_SCALES, key=lambda s: (abs(coverage[s] - TARGET_COVERAGE), abs(s - 1.0)))
    ensemble = ForecastEnsemble(kept, kept_lengths, combiner, scale)
    chosen = scorer.score(predict(ensemble, contexts))
    log.info("chose members %s, %s, interval scale %.2f: holdout %s", keep, combiner, scale, chosen)
    record: dict[str, object] = {
        "combiners": by_combiner,
        "combiner": combiner,
        "interval_scale": scale,
        "interval_scale_rule": f"holdout 0.1-0.9 coverage closest to {TARGET_COVERAGE}",
        "ensemble": chosen,
    }
    if len(keep) < len(members) or (min_members or len(members)) < len(members):
        record["members_kept"] = keep
        record["member_rule"] = (
            f"every subset of at least {min_members} of the {len(members)} trained members, with every "
            "combiner, scored on the holdout; the lowest OWA kept (ties: more members)"
        )
        record["subsets_scored"] = len(table)
        record["best_subsets"] = table[:10]
    return ensemble, keep, record


def reusable_members(
    version_dir: Path | None,
) -> dict[str, tuple[dict[str, torch.Tensor], dict[str, object]]]:
    """Members of an earlier ensemble version, by spec: their weights and their recorded report.

    A spec trains the same way whichever ensemble it sits in (its seed, loss and windows are in
    the spec), so a committed member's weights stand for re-training it; its recorded
    ``train_seconds`` is added to the new version's training time.
    """
    if version_dir is None:
        return {}
    training = json.loads((version_dir / "model.json").read_text())["training"]
    state = torch.load(version_dir / "torch_state.pt", weights_only=True)
    out = {}
    for i, member in enumerate(training["members"]):
        prefix = f"members.{i}."
        weights = {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}
        report = {k: v for k, v in member.items() if k not in ("spec", "holdout")}
        if "weights_from" in report:
            report["weights_originally_from"] = report["weights_from"]
        report.update(
            {"weights_from": f"{version_dir}/torch_state.pt {prefix[:-1]}", "trained_in_this_run": False}
        )
        out[spec_key(member["spec"])] = (weights, report)
    return out


def spec_key(spec: dict[str, object]) -> str:
    return json.dumps(spec, sort_keys=True)
