"""`leo-fleet load DIR`: build the lake's raw tables from a simulator Parquet run directory, without Kafka."""

from __future__ import annotations

import argparse
from pathlib import Path

from ingest.settings import Settings
from pipelines.cli.errors import CliError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "load",
        help="load a simulator run directory (Parquet) into the lake's raw tables",
        description=(
            "Load errors, link, latency, inventory and truth_faults Parquet files into raw.*, one transaction per "
            "file, streamed a row group at a time so memory stays flat. Files loaded before (same content) are skipped."
        ),
    )
    parser.add_argument("directory", type=Path, help="run directory written by `leo-fleet simulate --out`")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ingest.lake.fault_injection import CrashPoints
    from ingest.lake.loader import RunDirectoryError, load_run_directory

    if not args.directory.is_dir():
        raise CliError(f"{args.directory} is not a directory")
    try:
        result = load_run_directory(Settings.from_env(), args.directory, CrashPoints.from_env())
    except RunDirectoryError as exc:
        raise CliError(str(exc)) from None
    if result.rows:
        print(f"loaded {result.rows} rows from {args.directory} in {result.seconds:.1f} s")
    else:
        print(f"nothing new: the files in {args.directory} are already in the lake")
    return 0
