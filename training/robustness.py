"""``python -m training robustness``: do issue #13's better models also win away from their benchmarks?

Scores the committed ONNX artifacts (through their manifests, with onnxruntime on CPU) on public data
that is neither M4 nor SST (``training/data/ood/``), prints the tables and writes ``report.json`` and
``report.md``. A model that gains on its benchmark but loses here is not progress (issue #13).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from training import robustness_forecast as rf
from training import robustness_sentiment as rs
from training.forecast_pipeline import REPO_ROOT

MODELS_ROOT = REPO_ROOT / "models"
DEFAULT_OUT = REPO_ROOT / "docs/robustness"
# (name, version rule): the fast model first, then the better one that issue #13 ships beside it.
FORECASTERS = [("m4-hourly", "default"), ("m4-hourly-ensemble", "latest")]
CLASSIFIERS = [
    ("sst2-bilstm", "1"),
    ("sst2-bilstm", "latest"),
    ("sst2-distilled", "1"),
    ("sst2-distilled", "latest"),
]


def _versions(root: Path, specs: list[tuple[str, str]]) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for name, rule in specs:
        path = rf.resolve_version(root / name, rule)
        out[f"{name} v{path.name}"] = path
    return out


def _windows_won(window_smape: dict[str, list[float]], base: str, candidate: str) -> dict[str, int]:
    b, c = np.asarray(window_smape[base]), np.asarray(window_smape[candidate])
    return {"candidate_better": int((c < b).sum()), "base_better": int((b < c).sum()), "n": int(b.size)}


def forecast_section(res: dict[str, Any], base: str, cand: str) -> list[str]:
    pooled, cov = res["pooled"], res["coverage_0.1_0.9"]
    lines = [
        f"Forecasting: {res['windows']} windows ({res['windows_per_series']}), history {res['history']} h, "
        f"horizon {res['horizon']} h, origins every {res['step']} h; OWA relative to seasonal naive-24 "
        "(and to Naive2) on the same windows",
        "",
        "| method | sMAPE | MASE (m=24) | OWA vs sNaive-24 | OWA vs Naive2 | 10-90% coverage |",
        "|---|---|---|---|---|---|",
    ]
    for label, s in pooled.items():
        c = f"{cov[label]:.3f}" if label in cov else ""
        lines.append(
            f"| {label} | {s['smape']:.3f} | {s['mase']:.3f} | {s['owa_vs_snaive']:.4f} "
            f"| {s['owa_vs_naive2']:.4f} | {c} |"
        )
    lines += ["", "| series | " + " | ".join(res["by_series"][next(iter(res["by_series"]))]) + " |"]
    lines.append("|---" * (1 + len(pooled)) + "|")
    for sid, scores in res["by_series"].items():
        lines.append(
            f"| {sid} (OWA vs sNaive-24) | "
            + " | ".join(f"{s['owa_vs_snaive']:.4f}" for s in scores.values())
            + " |"
        )
    won = res["windows_won"]
    lines += [
        "",
        f"Windows where {cand} has the lower sMAPE: {won['candidate_better']} of {won['n']} "
        f"({base} lower: {won['base_better']}).",
    ]
    return lines


def sentiment_section(res: dict[str, Any]) -> list[str]:
    sets = res["sets"]
    names = list(sets)
    lines = [
        "Sentiment: accuracy (%) on human-rated sentences that are not SST (|mean rating| >= 1 of 4)",
        "",
        "| model | SST-2 test (manifest) | " + " | ".join(f"{n} (n={sets[n]['n']})" for n in names) + " |",
        "|---" * (2 + len(names)) + "|",
    ]
    for label, sst in res["sst2_test_accuracy_from_manifest"].items():
        lines.append(
            f"| {label} | {sst:.2f} | "
            + " | ".join(f"{sets[n]['accuracy'][label]:.2f}" for n in names)
            + " |"
        )
    lines.append(
        "| majority class | | "
        + " | ".join(f"{sets[n]['majority_class_accuracy']:.2f}" for n in names)
        + " |"
    )
    lines += [
        "",
        "Paired (same sentences): sentences only the candidate / only the base gets right, exact sign-test p",
        "",
    ]
    for pair in res["paired"]:
        for n in names:
            p = pair[n]
            lines.append(
                f"- {pair['candidate']} vs {pair['base']}, {n}: {p['candidate_only']} / "
                f"{p['base_only']}, p = {p['p_two_sided']:.2g}"
            )
    return lines


def verdicts(fc: dict[str, Any], fbase: str, fcand: str, st: dict[str, Any]) -> list[str]:
    """One line per improved model: does its benchmark gain survive out of domain?"""
    b, c = fc["pooled"][fbase]["owa_vs_snaive"], fc["pooled"][fcand]["owa_vs_snaive"]
    per_series = [s[fcand]["owa_vs_snaive"] < s[fbase]["owa_vs_snaive"] for s in fc["by_series"].values()]
    word = "WINS" if c < b else "LOSES"
    lines = [
        f"- {fcand} vs {fbase}: OOD OWA {c:.4f} vs {b:.4f} -> {word} pooled; "
        f"better on {sum(per_series)} of {len(per_series)} series"
    ]
    for pair in st["paired"]:
        for n, s in st["sets"].items():
            a_c, a_b = s["accuracy"][pair["candidate"]], s["accuracy"][pair["base"]]
            word = "WINS" if a_c > a_b else "LOSES" if a_c < a_b else "TIES"
            lines.append(
                f"- {pair['candidate']} vs {pair['base']} on {n}: {a_c:.2f}% vs {a_b:.2f}% -> {word} "
                f"(p = {pair[n]['p_two_sided']:.2g})"
            )
    return lines


def run(
    models_root: Path = MODELS_ROOT,
    out_dir: Path | None = DEFAULT_OUT,
    threads: int = 1,
    max_windows: int | None = None,
    max_sentences: int | None = None,
) -> dict[str, Any]:
    """Run both checks; write ``report.json`` / ``report.md`` into ``out_dir`` unless it is None."""
    fmodels = _versions(models_root, FORECASTERS)
    fbase, fcand = list(fmodels)
    fc = rf.evaluate(fmodels, threads=threads, max_per_series=max_windows)
    fc["windows_won"] = _windows_won(fc.pop("window_smape"), fbase, fcand)
    smodels = _versions(models_root, CLASSIFIERS)
    st = rs.evaluate(smodels, threads=threads, max_sentences=max_sentences)
    correct = st.pop("correct")
    cand = list(smodels)[-1]
    st["paired"] = [
        {"candidate": cand, "base": base, **{n: rs.paired(correct[n], base, cand) for n in correct}}
        for base in list(smodels)[:-1]
    ]
    report: dict[str, Any] = {"forecast": fc, "sentiment": st}
    text = [
        "# Out-of-domain check (issue #13)",
        "",
        "Written by `python -m training robustness`; data and provenance in `training/data/ood/README.md`.",
        "",
        *forecast_section(fc, fbase, fcand),
        "",
        *sentiment_section(st),
        "",
        "## Verdicts",
        "",
        *verdicts(fc, fbase, fcand, st),
        "",
    ]
    report["verdicts"] = verdicts(fc, fbase, fcand, st)
    print("\n".join(text))
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "report.json").write_text(json.dumps(report, indent=1) + "\n")
        (out_dir / "report.md").write_text("\n".join(text))
    return report
