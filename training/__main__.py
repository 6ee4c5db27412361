"""Command line: ``python -m training forecast --out models/<name>/<version>`` and friends."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

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

    ev = sub.add_parser("evaluate-forecast", help="re-score a committed forecaster on its test set")
    ev.add_argument("version_dir", type=Path)
    ev.add_argument("--train-csv", type=Path, default=M4_TRAIN)
    ev.add_argument("--test-csv", type=Path, default=None)
    ev.add_argument("--format", choices=["m4", "long"], default="m4")

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    test_csv = args.test_csv if args.test_csv or args.format != "m4" else M4_TEST
    if args.command == "forecast":
        name = args.name or args.out.resolve().parent.name
        run_forecast(
            args.out, args.train_csv, test_csv, args.format, config_from_args(args.epochs, args.seed), name
        )
    elif args.command == "evaluate-forecast":
        reevaluate(args.version_dir, args.train_csv, test_csv, args.format)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
