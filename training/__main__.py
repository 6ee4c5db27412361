"""Command line: ``python -m training forecast --out models/<name>/<version>`` and friends."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from training import (
    batch_profile,
    classify_pipeline,
    ensemble_pipeline,
    profiles,
    quantize,
    sentiment_pipeline,
    textgen_pipeline,
)
from training.forecast_pipeline import M4_TEST, M4_TRAIN, config_from_args, reevaluate, run_forecast


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training")
    sub = parser.add_subparsers(dest="command", required=True)

    fc = sub.add_parser("forecast", help="train, export and evaluate the LSTM forecaster")
    fc.add_argument("--out", type=Path, required=True, help="models/<name>/<version>")
    fc.add_argument("--name", default=None, help="model name (default: parent folder of --out)")
    fc.add_argument("--train-csv", type=Path, default=M4_TRAIN)
    fc.add_argument("--test-csv", type=Path, default=None, help="default: M4 Hourly test with M4 data")
    fc.add_argument(
        "--format", choices=["m4", "long"], default="m4", help="wide M4 CSV or series_id,timestamp,value"
    )
    fc.add_argument("--epochs", type=int, default=None)
    fc.add_argument("--seed", type=int, default=None)

    fe = sub.add_parser("forecast-ensemble", help="train diverse LSTM forecasters, export them as one graph")
    fe.add_argument("--out", type=Path, required=True, help="models/<name>/<version>")
    fe.add_argument("--name", default=None, help="model name (default: parent folder of --out)")
    fe.add_argument("--epochs", type=int, default=ensemble_pipeline.MEMBER_EPOCHS, help="per member")
    fe.add_argument("--members", type=int, default=len(ensemble_pipeline.MEMBERS), help="first N of MEMBERS")
    fe.add_argument("--threads", type=int, default=1, help="torch threads")
    fe.add_argument("--hidden-size", type=int, default=ensemble_pipeline.EnsembleOptions.hidden_size)
    fe.add_argument("--holdout-only", action="store_true", help="pilot: stop before export and the test set")
    fe.add_argument(
        "--member-weights", type=Path, default=None, help="v1-recipe member weights (skip training it)"
    )
    fe.add_argument("--member-set", choices=sorted(ensemble_pipeline.MEMBER_SETS), default="v1")
    fe.add_argument(
        "--reuse-members", type=Path, default=None, help="ensemble version whose same-spec members are reused"
    )

    ev = sub.add_parser("evaluate-forecast", help="re-score a committed forecaster on its test set")
    ev.add_argument("version_dir", type=Path)
    ev.add_argument("--train-csv", type=Path, default=M4_TRAIN)
    ev.add_argument("--test-csv", type=Path, default=None)
    ev.add_argument("--format", choices=["m4", "long"], default="m4")

    st = sub.add_parser("sentiment", help="train, export and evaluate the SST-2 BiLSTM sentiment model")
    st.add_argument("--out", type=Path, required=True, help="models/<name>/<version>")
    st.add_argument("--name", default=None, help="model name (default: parent folder of --out)")
    st.add_argument("--epochs", type=int, default=None)
    st.add_argument("--seed", type=int, default=None)
    st.add_argument("--no-pretrained", action="store_true", help="WordPiece trained on SST, random init")
    st.add_argument("--train-limit", type=int, default=None, help="train on a random subset (experiments)")

    sd = sub.add_parser("sst2-distill", help="BiLSTM distilled from a fine-tuned MiniLM teacher (SST-2)")
    sd.add_argument("--out", type=Path, required=True, help="models/<name>/<version>")
    sd.add_argument("--name", default=None, help="model name (default: parent folder of --out)")
    sd.add_argument("--epochs", type=int, default=None, help="student epochs")
    sd.add_argument("--seed", type=int, default=None, help="student seed")
    sd.add_argument("--augment-seed", type=int, default=None, help="seed of the transfer set's augmentation")
    sd.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    sd.add_argument("--teacher-cache", type=Path, default=Path(".cache/sst2-teacher"))
    sd.add_argument("--variants", type=int, default=None, help="augmentation passes over the phrases (v1: 3)")
    sd.add_argument("--max-augmented", type=int, default=None, help="cap on augmented sentences (v1: 80000)")
    sd.add_argument("--teacher-epochs", type=int, default=None, help="teacher fine-tuning epochs (v1: 1)")
    sd.add_argument(
        "--label-only",
        action="store_true",
        help="teacher + transfer set + cached logits; no student, no test",
    )

    sp = sub.add_parser(
        "sst2-distill-pair", help="distilled students' mean logits as one graph, chosen on dev"
    )
    sp.add_argument("--out", type=Path, required=True, help="models/<name>/<version>")
    sp.add_argument("--name", default=None, help="model name (default: parent folder of --out)")
    sp.add_argument("students", type=Path, nargs="+", help="version folders of sst2-distill runs")
    sp.add_argument("--threads", type=int, default=1, help="torch threads")
    sp.add_argument("--dev-only", action="store_true", help="score the candidates on dev; no export, no test")

    es = sub.add_parser("evaluate-sentiment", help="re-score a committed sentiment model with onnxruntime")
    es.add_argument("version_dir", type=Path)

    rb = sub.add_parser("robustness", help="out-of-domain check: issue #13's models on non-M4/SST data")
    rb.add_argument("--out-dir", type=Path, default=None, help="where report.json/.md go (docs/robustness)")
    rb.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    rb.add_argument("--max-windows", type=int, default=None, help="first N windows per series (a quick look)")
    rb.add_argument("--max-sentences", type=int, default=None, help="first N sentences per set")

    tg = sub.add_parser("textgen", help="train, export and evaluate the character LSTM (Tiny Shakespeare)")
    tg.add_argument("--out", type=Path, required=True, help="models/<name>/<version>")
    tg.add_argument("--name", default=None, help="model name (default: parent folder of --out)")
    tg.add_argument("--steps", type=int, default=None)
    tg.add_argument("--max-seconds", type=float, default=None, help="time budget of the training loop")
    tg.add_argument("--seed", type=int, default=None)
    tg.add_argument("--threads", type=int, default=None, help="torch threads (default: one per core)")

    et = sub.add_parser("evaluate-textgen", help="re-score a committed text generator with onnxruntime")
    et.add_argument("version_dir", type=Path)
    et.add_argument("--prefix-only", action="store_true", help="only the manifest's quick prefix check")

    cl = sub.add_parser("classify", help="train, export and evaluate the MNIST row-LSTM classifier")
    cl.add_argument("--out", type=Path, required=True, help="models/<name>/<version>")
    cl.add_argument("--name", default=None, help="model name (default: parent folder of --out)")
    cl.add_argument("--epochs", type=int, default=None)
    cl.add_argument("--seed", type=int, default=None)
    cl.add_argument("--max-seconds", type=float, default=None, help="time budget of the training loop")
    cl.add_argument("--threads", type=int, default=None, help="torch threads (default: one per core)")

    ec = sub.add_parser("evaluate-classify", help="re-score a committed classifier on the MNIST test set")
    ec.add_argument("version_dir", type=Path)

    sl = sub.add_parser("slim", help="lossless graph rewrites of committed versions (training/onnx_slim.py)")
    sl.add_argument("version_dirs", type=Path, nargs="+", help="models/<name>/<version> folders")

    qz = sub.add_parser("quantize", help="int8 variant of a committed version (dynamic quantization + gate)")
    qz.add_argument("src_version_dir", type=Path, help="models/<name>/<version> of the fp32 model")
    qz.add_argument("--out", type=Path, required=True, help="models/<name>/<new version>")
    qz.add_argument("--weight-type", nargs="+", choices=quantize.WEIGHT_TYPES, default=quantize.WEIGHT_TYPES)
    qz.add_argument("--per-channel", nargs="+", choices=["off", "on"], default=["off", "on"])
    qz.add_argument("--scope", nargs="+", choices=list(quantize.SCOPES), default=list(quantize.SCOPES))
    qz.add_argument("--force", action="store_true", help="replace --out if it is not empty")
    qz.add_argument(
        "--default-policy",
        choices=list(quantize.DEFAULT_POLICIES),
        # The service's contract is that a row's answer does not depend on its batch (DESIGN.md);
        # dynamic int8 breaks it, so by default int8 is only served when pinned.
        default="quality+batch-invariance",
        help="what the manifest's 'default' requires (see training/quantize.py)",
    )

    pb = sub.add_parser(
        "profile-batch", help="measure rows/s per batch size and record the preferred one in model.json"
    )
    pb.add_argument("version_dir", type=Path)
    pb.add_argument("--seconds", type=float, default=2.0, help="timed seconds per batch size")

    pd = sub.add_parser(
        "profile-data", help="write the drift reference profile (profile.json) and register it in model.json"
    )
    pd.add_argument("version_dir", type=Path)

    rp = sub.add_parser("report", help="(re)write report.md + PNGs next to model.json and list them in it")
    rp.add_argument("version_dir", type=Path)

    td = sub.add_parser("tensor-demo", help="train and export the generic ONNX example (model.onnx only)")
    td.add_argument("--out", type=Path, required=True, help="models/<name>/<version>")
    td.add_argument("--seconds", type=float, default=45.0)

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    if args.command in ("forecast", "evaluate-forecast"):
        test_csv = args.test_csv if args.test_csv or args.format != "m4" else M4_TEST
    if args.command == "tensor-demo":
        from training.tensor_demo import train_and_export

        train_and_export(args.out, M4_TRAIN, args.seconds)
        return 0
    if args.command == "forecast":
        name = args.name or args.out.resolve().parent.name
        run_forecast(
            args.out, args.train_csv, test_csv, args.format, config_from_args(args.epochs, args.seed), name
        )
    elif args.command == "forecast-ensemble":
        opts = ensemble_pipeline.EnsembleOptions(
            args.epochs,
            args.members,
            args.threads,
            args.hidden_size,
            args.holdout_only,
            args.member_weights,
            args.member_set,
            args.reuse_members,
        )
        name = args.name or args.out.resolve().parent.name
        ensemble_pipeline.run_ensemble(args.out, M4_TRAIN, M4_TEST, name, opts)
        if args.holdout_only:
            return 0
    elif args.command == "evaluate-forecast":
        reevaluate(args.version_dir, args.train_csv, test_csv, args.format)
    elif args.command == "sentiment":
        cfg = sentiment_pipeline.config_from_args(args.epochs, args.seed, not args.no_pretrained)
        name = args.name or args.out.resolve().parent.name
        sentiment_pipeline.run_sentiment(args.out, cfg, name, args.train_limit)
    elif args.command == "sst2-distill":
        import torch

        from training import distill_pipeline

        if args.threads is not None:
            torch.set_num_threads(args.threads)
        name = args.name or args.out.resolve().parent.name
        cfg_d = distill_pipeline.config_from_args(
            args.epochs, args.seed, args.augment_seed, args.variants, args.max_augmented, args.teacher_epochs
        )
        if args.label_only:
            logging.getLogger(__name__).info(
                "labelled: %s", distill_pipeline.label_only(cfg_d, args.teacher_cache)
            )
            return 0
        distill_pipeline.run_distill(args.out, cfg_d, name, args.teacher_cache)
    elif args.command == "sst2-distill-pair":
        import torch

        from training import distill_pair

        torch.set_num_threads(args.threads)
        if args.dev_only:
            distill_pair.dev_only(args.students)
            return 0
        distill_pair.run_pair(args.out, args.students, args.name or args.out.resolve().parent.name)
    elif args.command == "evaluate-sentiment":
        sentiment_pipeline.reevaluate(args.version_dir)
    elif args.command == "robustness":
        from training import robustness

        robustness.run(
            out_dir=args.out_dir or robustness.DEFAULT_OUT,
            threads=args.threads,
            max_windows=args.max_windows,
            max_sentences=args.max_sentences,
        )
    elif args.command == "textgen":
        cfg_t = textgen_pipeline.config_from_args(args.steps, args.seed, args.max_seconds, args.threads)
        textgen_pipeline.run_textgen(args.out, cfg_t, args.name or args.out.resolve().parent.name)
    elif args.command == "evaluate-textgen":
        textgen_pipeline.reevaluate(args.version_dir, args.prefix_only)
    elif args.command == "classify":
        cfg_c = classify_pipeline.config_from_args(args.epochs, args.seed, args.max_seconds, args.threads)
        classify_pipeline.run_classify(args.out, cfg_c, args.name or args.out.resolve().parent.name)
    elif args.command == "evaluate-classify":
        classify_pipeline.reevaluate(args.version_dir)
    elif args.command == "slim":
        from training.onnx_slim import slim_version

        for version_dir in args.version_dirs:
            print(version_dir, json.dumps(slim_version(version_dir)))
    elif args.command == "quantize":
        cands = quantize.candidates(args.weight_type, [p == "on" for p in args.per_channel], args.scope)
        quantize.quantize_version(args.src_version_dir, args.out, cands, args.force, args.default_policy)
    elif args.command == "report":
        from training.reports import write_report

        try:
            written = write_report(args.version_dir)
        except ValueError as exc:  # a task without a report builder
            print(f"python -m training report: {exc}", file=sys.stderr)
            return 2
        for name in written:
            print(args.version_dir / name)
    elif args.command == "profile-batch":
        batch_profile.profile_version(args.version_dir, args.seconds)
    elif args.command == "profile-data":
        profiles.profile_version(args.version_dir)
    if args.command in (
        "forecast",
        "forecast-ensemble",
        "sentiment",
        "sst2-distill",
        "sst2-distill-pair",
        "quantize",
    ):
        # Every new version leaves with its serving hint (training/batch_profile.py).
        batch_profile.profile_version(args.out)
        # ...and with the reference its drift monitoring compares traffic to (training/profiles.py).
        profiles.profile_version(args.out)
    if args.command in ("textgen", "classify"):
        profiles.profile_version(args.out)  # the drift reference of the generator and the classifier
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
