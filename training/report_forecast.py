"""The forecaster's report: learning curves, fan charts, interval coverage by horizon, OWA vs anchors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from training.forecast_eval import onnx_forecast
from training.forecast_pipeline import REPO_ROOT, load_dataset
from training.reports import Section, new_figure

FAN_SERIES = 4
HISTORY_SHOWN = 96  # hours of history before each fan chart's forecast


def _data_paths(manifest: dict[str, Any]) -> tuple[Path, Path | None]:
    paths = [REPO_ROOT / (d["path"] if isinstance(d, dict) else d) for d in manifest["training"]["data"]]
    return paths[0], (paths[1] if len(paths) > 1 else None)


def _learning_curves(section: Section, history: list[dict[str, float]]) -> None:
    if not history:
        return
    epochs = [h["epoch"] for h in history]
    fig = new_figure()
    left = fig.add_subplot(1, 2, 1)
    left.plot(epochs, [h["train_pinball"] for h in history], color="#1f4e79")
    left.set(title="training loss", xlabel="epoch", ylabel="mean pinball loss (scaled)")
    right = fig.add_subplot(1, 2, 2)
    right.plot(epochs, [h["holdout_rel_snaive"] for h in history], color="#d1495b")
    right.axhline(1.0, color="grey", linestyle="--", linewidth=1, label="seasonal naive")
    right.set(title="hold-out error", xlabel="epoch", ylabel="MAE relative to seasonal naive")
    right.legend()
    section.figure(
        "learning_curves", fig, "Learning curves: training pinball loss and hold-out error per epoch"
    )


def _member_curves(section: Section, members: list[dict[str, Any]]) -> None:
    """An ensemble's learning curves: one line per member, labelled by context length and loss."""
    fig = new_figure()
    left = fig.add_subplot(1, 2, 1)
    right = fig.add_subplot(1, 2, 2)
    for i, member in enumerate(members, 1):
        history, spec = member["history"], member["spec"]
        epochs = [h["epoch"] for h in history]
        label = f"member {i}: {spec['context_length']}h, {spec['loss']}"
        left.plot(epochs, [h["train_pinball"] for h in history], label=label)
        right.plot(epochs, [h["holdout_rel_snaive"] for h in history])
    left.set(title="training loss", xlabel="epoch", ylabel="mean pinball loss (scaled)")
    left.legend(fontsize=7)
    right.axhline(1.0, color="grey", linestyle="--", linewidth=1, label="seasonal naive")
    right.set(title="hold-out error per member", xlabel="epoch", ylabel="MAE relative to seasonal naive")
    right.legend()
    section.figure(
        "learning_curves", fig, "Learning curves of every member: training pinball loss and hold-out error"
    )


def _fan_charts(section: Section, ids: list[str], train: list[np.ndarray], test: np.ndarray,
                pred: np.ndarray, quantiles: list[float]) -> None:  # fmt: skip
    horizon = test.shape[1]
    # Spread over the set, deterministic: the series at evenly spaced positions.
    picks = np.linspace(0, len(ids) - 1, FAN_SERIES).astype(int)
    fig = new_figure(10, 6)
    pairs = [(q, 1 - q) for q in quantiles if q < 0.5 and (1 - q) in quantiles]
    for k, i in enumerate(picks):
        ax = fig.add_subplot(2, 2, k + 1)
        history = train[i][-HISTORY_SHOWN:]
        past = np.arange(-len(history) + 1, 1)
        future = np.arange(1, horizon + 1)
        ax.plot(past, history, color="#1f4e79", linewidth=1, label="history")
        for low, high in pairs:
            alpha = 0.15 + 0.15 * pairs.index((low, high))
            lower, upper = pred[i, :horizon, quantiles.index(low)], pred[i, :horizon, quantiles.index(high)]
            ax.fill_between(
                future, lower, upper, color="#d1495b", alpha=alpha, linewidth=0, label=f"{low:g}-{high:g}"
            )
        ax.plot(
            future, pred[i, :horizon, quantiles.index(0.5)], color="#d1495b", linewidth=1.5, label="median"
        )
        ax.plot(future, test[i], color="#2a9d8f", linestyle="--", linewidth=1.2, label="actual")
        ax.set_title(ids[i], fontsize=10)
        ax.tick_params(labelsize=8)
        if k == 0:
            ax.legend(fontsize=7, loc="upper left", ncol=2)
    fig.supxlabel("hours (0 = last observation)")
    section.figure(
        "fan_charts", fig, f"Fan charts of {FAN_SERIES} test series: quantile bands, median and the truth"
    )


def _coverage(section: Section, test: np.ndarray, pred: np.ndarray, quantiles: list[float]) -> list[str]:
    horizon = test.shape[1]
    steps = np.arange(1, horizon + 1)
    fig = new_figure()
    ax = fig.add_subplot(1, 1, 1)
    rows = [
        "| interval | nominal | observed (all steps) | steps 1-12 | steps 37-48 |",
        "|---|---|---|---|---|",
    ]
    colors = ["#1f4e79", "#d1495b", "#2a9d8f"]
    pairs = [(q, 1 - q) for q in quantiles if q < 0.5 and (1 - q) in quantiles]
    for k, (low, high) in enumerate(pairs):
        lo, hi = pred[:, :horizon, quantiles.index(low)], pred[:, :horizon, quantiles.index(high)]
        inside = (test >= lo) & (test <= hi)
        by_step = inside.mean(axis=0)
        nominal = high - low
        color = colors[k % len(colors)]
        ax.plot(steps, by_step, color=color, label=f"{low:g}-{high:g} observed")
        ax.axhline(nominal, color=color, linestyle=":", linewidth=1)
        rows.append(
            f"| {low:g}-{high:g} | {nominal:.2f} | {inside.mean():.3f} | {by_step[:12].mean():.3f} "
            f"| {by_step[-12:].mean():.3f} |"
        )
    ax.set(xlabel="forecast step (hours ahead)", ylabel="share of actual values inside",
           title="Interval coverage by horizon (dotted: nominal)", ylim=(0, 1))  # fmt: skip
    ax.legend(fontsize=8)
    section.figure("coverage", fig, "Interval coverage by forecast step over every test series")
    return rows


def _owa_bars(section: Section, evaluation: dict[str, Any]) -> None:
    bars = {"this model": evaluation["model"]["owa"]}
    bars.update({f"{name} (our run)": scores["owa"] for name, scores in evaluation["baselines"].items()})
    bars.update({f"{name} (published)": value for name, value in evaluation.get("published_owa", {}).items()})
    names = sorted(bars, key=lambda n: bars[n])
    fig = new_figure(8, 0.45 * len(names) + 1.2)
    ax = fig.add_subplot(1, 1, 1)
    colors = ["#d1495b" if n == "this model" else "#8aa1b8" if "published" in n else "#c9d3de" for n in names]
    ax.barh(names, [bars[n] for n in names], color=colors)
    for y, name in enumerate(names):
        ax.text(bars[name], y, f" {bars[name]:.3f}", va="center", fontsize=8)
    ax.axvline(1.0, color="grey", linestyle="--", linewidth=1)
    ax.set(
        xlabel="OWA on M4 Hourly (lower is better; 1 = Naive2)",
        title="OWA against baselines and published anchors",
    )
    ax.set_xlim(0, max(min(max(bars.values()), 4.0) * 1.15, 1.2))
    section.figure("owa", fig, "OWA of this model, the baselines (run here) and published M4 results")


def forecast_report(section: Section, manifest: dict[str, Any]) -> None:
    params, evaluation = manifest["parameters"], manifest["evaluation"]
    quantiles = [float(q) for q in params["quantiles"]]
    train_csv, test_csv = _data_paths(manifest)
    ids, train, test = load_dataset(train_csv, test_csv, manifest["training"].get("data_format", "m4"),
                                    params["horizon"])  # fmt: skip
    pred = onnx_forecast(section.version_dir / "model.onnx", [s[-params["context_length"] :] for s in train])
    model = evaluation["model"]
    section.text(
        "## Accuracy",
        "",
        f"{evaluation['test_series']} test series, horizon {evaluation['horizon']}.",
        "",
        "| method | sMAPE | MASE | OWA |",
        "|---|---|---|---|",
        f"| **this model** | {model['smape']:.3f} | {model['mase']:.4f} | **{model['owa']:.4f}** |",
        *(
            f"| {n} | {s['smape']:.3f} | {s['mase']:.4f} | {s['owa']:.4f} |"
            for n, s in evaluation["baselines"].items()
        ),
        "",
    )
    _owa_bars(section, evaluation)
    section.text("## Learning curves", "")
    if manifest["training"].get("members"):
        _member_curves(section, manifest["training"]["members"])
    else:
        _learning_curves(section, manifest["training"].get("history", []))
    section.text("## Forecasts against the truth", "")
    _fan_charts(section, ids, train, test, pred.astype(np.float64), quantiles)
    section.text("## Calibration of the intervals", "")
    rows = _coverage(section, test, pred.astype(np.float64), quantiles)
    section.text(*rows, "")
