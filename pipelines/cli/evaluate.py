"""`leo-fleet evaluate --train RUN [--test RUN]`: held-out detector quality against a simulator run's ground truth.

The protocol and every figure are models.holdout's; this command reads the runs and the SLO spec and prints the
table (docs/detector_quality.md).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pipelines.cli.errors import CliError, number
from pipelines.cli.simulate import HOURS, SEED

TITLE = "Held-out detector quality (detector vs static-threshold baseline, same run)"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="held-out detector quality of simulator runs against their ground truth",
        description="Held-out detector quality against ground truth, each detector beside its static baseline.",
    )
    parser.add_argument("--train", type=Path, required=True, help="fleet run directory to fit on")
    parser.add_argument("--test", type=Path, help="fleet run directory to score (default: the training run)")
    parser.add_argument("--split-hours", type=HOURS, help="time split, hours after the run start (default: middle)")
    parser.add_argument("--test-fraction", type=number(0, 1), help="share of controllers held out (default: half)")
    parser.add_argument("--seed", type=SEED, help="seed of the models and the bootstrap (default 0)")
    parser.add_argument("--markdown", type=Path, help="also write the table as Markdown here")
    parser.add_argument("--slos", type=Path, help="SLO spec file with the health policy (default: the packaged one)")
    parser.add_argument(
        "--save-model",
        type=Path,
        help="also store the early-warning model fitted on the training side here, with its held-out figures "
        "(pipelines/defs/early_warning/shipped is the one the package ships)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import Progress

    from models.holdout import Protocol, Run, controller_latency_slo, evaluate
    from pipelines.lib import slos as spec

    try:
        path = spec.SLO_SPEC if args.slos is None else args.slos
        chosen = {"split_h": args.split_hours, "test_fraction": args.test_fraction, "seed": args.seed}
        protocol = Protocol(
            **{k: v for k, v in chosen.items() if v is not None},
            slo=controller_latency_slo(spec.load_slos(path)),
            health=spec.load_health_policy(path),
        )
        with Progress(console=Console(stderr=True), transient=True) as bar:
            task = bar.add_task("loading the training run", total=None)

            def step(what: str) -> None:
                bar.update(task, description=what)

            train = Run.load(args.train, protocol)
            same = args.test is None or args.test.resolve() == args.train.resolve()
            step("loading the test run")
            test = train if same else Run.load(args.test, protocol)
            report = evaluate(train, test, protocol, step)
    except (FileNotFoundError, ValueError) as exc:
        raise CliError(str(exc)) from None
    Console(width=160).print(_table(report.rows))
    if args.markdown:
        args.markdown.write_text(report.markdown() + "\n")
    if args.save_model:
        from pipelines.defs.early_warning.early_warning_assets import ship_model

        stored = ship_model(report.early_warning, report.rows, args.train, args.test or args.train, args.save_model)
        Console(stderr=True).print(f"early-warning model v{stored['version']} stored in {args.save_model}")
    return 0


def _table(rows: list[tuple[str, str, str, str]]):
    from rich.table import Table

    table = Table(title=TITLE)
    for name in ("section", "metric", "detector", "baseline"):
        table.add_column(name, justify="left" if name in ("section", "metric") else "right")
    for row in rows:
        table.add_row(*row)
    return table
