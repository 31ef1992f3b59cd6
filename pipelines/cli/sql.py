"""`leo-fleet sql`: read-only SQL over the lake for SREs, safe to run while the loader writes."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path

from ingest.settings import Settings
from pipelines.cli.errors import CliError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sql",
        help="run read-only SQL over the lake (raw.errors, raw.link, raw.latency, raw.inventory, ...)",
        description=(
            "Query the DuckLake the loader writes, read-only and with snapshot isolation, so it never blocks "
            "ingestion. Tables live in schema raw. Without -c or -f the query is read from standard input."
        ),
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("-c", "--command", metavar="QUERY", help="SQL to run")
    source.add_argument("-f", "--file", metavar="FILE", type=Path, help="file of SQL to run")
    parser.add_argument("--format", choices=("table", "csv", "json"), default="table", help="output format")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import duckdb

    from ingest import lake

    query = _query(args)
    try:
        con = lake.connect(Settings.from_env(), read_only=True)
    except FileNotFoundError as exc:
        raise CliError(str(exc)) from None
    try:
        con.execute("SET TimeZone = 'UTC'")  # one fleet, one clock: never the reader's local time
        cursor = con.execute(query)
        if cursor.description is None:
            return 0
        headers = [column[0] for column in cursor.description]
        rows = cursor.fetchall()
    except duckdb.Error as exc:
        raise CliError(" ".join(str(exc).split())) from None
    finally:
        con.close()
    _write(args.format, headers, rows)
    return 0


def _query(args: argparse.Namespace) -> str:
    if args.command:
        return args.command
    if args.file:
        try:
            return args.file.read_text()
        except OSError as exc:
            raise CliError(f"cannot read {args.file}: {exc.strerror}") from None
    if sys.stdin.isatty():
        raise CliError("give a query with -c QUERY or -f FILE (or pipe it in)")
    return sys.stdin.read()


def _write(output_format: str, headers: list[str], rows: list[tuple]) -> None:
    if output_format == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(headers)
        writer.writerows([[_plain(value) for value in row] for row in rows])
    elif output_format == "json":
        print(json.dumps([dict(zip(headers, row, strict=True)) for row in rows], default=_plain, indent=None))
    else:
        from tabulate import tabulate

        print(tabulate([[_plain(value) for value in row] for row in rows], headers=headers, tablefmt="simple"))


def _plain(value: object) -> object:
    """Values JSON and CSV can carry: ISO times, hex bytes, exact decimals as text."""
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, Decimal):
        return str(value)
    return value
