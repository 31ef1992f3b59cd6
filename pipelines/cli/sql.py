"""`leo-fleet sql`: read-only SQL over the lake for SREs, safe to run while the loader writes.

Read-only and lake-only, checked before anything runs and enforced again by the session: only SELECT (and EXPLAIN
of a SELECT) statements are accepted, so COPY, ATTACH, INSTALL/LOAD, CREATE, INSERT, SET, ... are refused; a query
may read only the lake (the allowlist of `sql_guard`: no sqlite_scan, read_csv, glob, ...); the lake is attached
READ_ONLY; and after the attach the session may touch no file outside the lake's data path
(`enable_external_access = false`), spills to a private directory under the data dir, and its configuration is
locked, so no statement can change any of that. Without -c or -f on a terminal it is a REPL.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import re
import shutil
import sys
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from ingest.settings import Settings
from pipelines.cli.errors import CliError

if TYPE_CHECKING:
    import duckdb


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sql",
        help="run read-only SQL over the lake (raw.errors, raw.link, raw.latency, raw.inventory, ...)",
        description=(
            "Query the DuckLake the loader writes, read-only and with snapshot isolation, so it never blocks "
            "ingestion. Raw tables live in schema raw, the marts in marts, the SRE views and macros in sre (see "
            "docs/sql.md). Without -c or -f: an interactive prompt on a terminal, else the query from standard input."
        ),
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("-c", "--command", dest="query", metavar="QUERY", help="SQL to run")
    source.add_argument("-f", "--file", metavar="FILE", type=Path, help="file of SQL to run")
    parser.add_argument("--format", choices=("table", "csv", "json"), default="table", help="output format")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.query is None and args.file is None and sys.stdin.isatty():
        con = _open()
        try:
            repl(con, args.format)
        finally:
            con.close()
        return 0
    query = _query(args)
    con = _open()
    try:
        headers, rows = execute(con, query)
    finally:
        con.close()
    if headers:
        _write(args.format, headers, rows)
    return 0


def _open() -> duckdb.DuckDBPyConnection:
    from ingest import lake

    settings = Settings.from_env()
    try:
        con = lake.connect(settings, read_only=True)
    except FileNotFoundError as exc:
        raise CliError(str(exc)) from None
    lock_down(con, settings)
    return con


def temp_dir(settings: Settings) -> Path:
    """Where the session spills sorts and joins that outgrow memory: the user's own, never the working directory."""
    return settings.scratch_dir / "sql"


def lock_down(con: duckdb.DuckDBPyConnection, settings: Settings) -> None:
    """No file access outside the lake's data path from here on, and no way to change that (or any setting)."""
    spill = temp_dir(settings)
    spill.mkdir(mode=0o700, parents=True, exist_ok=True)
    spill.chmod(0o700)  # also when an older run left it with looser bits
    con.execute("SET TimeZone = 'UTC'")  # one fleet, one clock: never the reader's local time
    con.execute("SET temp_directory = $dir", {"dir": str(spill)})
    con.execute("SET allowed_directories = $dirs", {"dirs": [settings.data_path]})
    # Nothing the query names may load an extension or come from Python variables of this process.
    con.execute("SET autoinstall_known_extensions = false; SET autoload_known_extensions = false")
    con.execute("SET python_enable_replacements = false")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


_EXPLAIN = re.compile(r"^\s*EXPLAIN\s+(?:ANALY[SZ]E\s+)?", re.IGNORECASE)


def check(con: duckdb.DuckDBPyConnection, query: str) -> None:
    """Refuse the whole input unless every statement only reads the lake: SELECT (SHOW, DESCRIBE, FROM, WITH,
    VALUES are SELECTs too), or EXPLAIN [ANALYZE] of one (EXPLAIN ANALYZE runs its statement), each within the
    allowlist of `sql_guard`."""
    import duckdb

    from pipelines.cli.sql_guard import Guard  # imports duckdb: not at `leo-fleet --help` time

    statements = con.extract_statements(query)
    if not statements:
        raise CliError("nothing to run: the input holds no SQL statement (only blanks, comments or ';')")
    guard = Guard(con)
    for statement in statements:
        kind, text = statement.type, statement.query
        if kind == duckdb.StatementType.EXPLAIN:
            text = _EXPLAIN.sub("", text, count=1)
            inner = con.extract_statements(text)
            kind = next((s.type for s in inner if s.type != duckdb.StatementType.SELECT), duckdb.StatementType.SELECT)
        if kind != duckdb.StatementType.SELECT:
            raise CliError(f"read-only: {kind.name} statements are refused (only SELECT and EXPLAIN SELECT run here)")
        guard.check(text)


def execute(con: duckdb.DuckDBPyConnection, query: str) -> tuple[list[str], list[tuple]]:
    """Run read-only SQL (several statements: the last one's result); any error becomes one line."""
    import duckdb

    try:
        check(con, query)
        cursor = con.execute(query)
        if cursor.description is None:
            return [], []
        return [column[0] for column in cursor.description], cursor.fetchall()
    except duckdb.Error as exc:
        raise CliError(" ".join(str(exc).split())) from None
    except RuntimeError as exc:  # DuckDB's Python client reports Ctrl-C during a query as "Query interrupted"
        if "interrupted" not in str(exc):
            raise
        raise KeyboardInterrupt from None


PROMPT, CONTINUATION = "leo-fleet> ", "      ...> "
HELP = (
    "End a statement with ';' (it may span lines). .tables lists tables and views, .help shows this, "
    ".quit (or Ctrl-D) leaves. Read-only: only SELECT runs."
)
TABLES_SQL = """
    SELECT schema_name AS schema, table_name AS name, 'table' AS kind FROM duckdb_tables()
    WHERE database_name = current_database()
    UNION ALL
    SELECT schema_name, view_name, 'view' FROM duckdb_views() WHERE database_name = current_database() AND NOT internal
    ORDER BY schema, name"""


def repl(
    con: duckdb.DuckDBPyConnection,
    output_format: str = "table",
    read_line: Callable[[str], str] = input,
) -> None:
    """Prompt, collect lines until one ends with ';', run, print; an error prints one line and the loop goes on."""
    _history()
    print(f"leo-fleet sql (read-only). {HELP}")
    lines: list[str] = []
    while True:
        try:
            line = read_line(CONTINUATION if lines else PROMPT)
        except EOFError:
            print()
            return
        except KeyboardInterrupt:
            print()
            lines.clear()
            continue
        command = line.strip()
        if not lines and command.startswith("."):
            if command in (".quit", ".exit"):
                return
            _dot(con, command, output_format)
            continue
        if command:
            lines.append(line)
        if command.endswith(";"):
            query, lines = "\n".join(lines), []
            _run_and_print(con, query, output_format)


def _dot(con: duckdb.DuckDBPyConnection, command: str, output_format: str) -> None:
    if command == ".tables":
        _run_and_print(con, TABLES_SQL, output_format)
    elif command == ".help":
        print(HELP)
    else:
        print(f"error: unknown command {command} ({HELP})", file=sys.stderr)


def _run_and_print(con: duckdb.DuckDBPyConnection, query: str, output_format: str) -> None:
    """One statement of the REPL: whatever it does, at most one error line, then back to the prompt."""
    try:
        headers, rows = execute(con, query)
        if headers:
            _write(output_format, headers, rows)
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)


def _history() -> None:
    """Arrow-key editing and a history file, where readline exists (it is optional: not on every platform)."""
    try:
        import readline
    except ImportError:
        return
    path = Path.home() / ".leo_fleet_sql_history"
    with contextlib.suppress(OSError):
        readline.read_history_file(path)
    readline.set_history_length(1000)
    import atexit

    atexit.register(_save_history, readline, path)


def _save_history(readline, path: Path) -> None:
    with contextlib.suppress(OSError):
        readline.write_history_file(path)


def _query(args: argparse.Namespace) -> str:
    if args.query is not None:
        return args.query
    if args.file:
        try:
            return args.file.read_text()
        except OSError as exc:
            raise CliError(f"cannot read {args.file}: {exc.strerror}") from None
    return sys.stdin.read()


# Table output wider than this (the terminal's width; 160 when not on a terminal) is shown one record at a time.
DEFAULT_WIDTH = 160
SIGNIFICANT_DIGITS = 4


def _write(output_format: str, headers: list[str], rows: list[tuple]) -> None:
    """CSV and JSON carry every value at full precision (for programs); the table is for people (`table`)."""
    if output_format == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(headers)
        writer.writerows([[_plain(value) for value in row] for row in rows])
    elif output_format == "json":
        print(json.dumps([dict(zip(headers, row, strict=True)) for row in rows], default=_plain, indent=None))
    else:
        print(table(headers, rows, shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns))


def table(headers: list[str], rows: list[tuple], width: int = DEFAULT_WIDTH) -> str:
    """Rows as an aligned table of readable cells (numbers right-aligned); when that is wider than `width`, one
    block per record, a column per line (psql's expanded display), so no line wraps on the terminal."""
    from tabulate import tabulate

    cells = [[readable(value) for value in row] for row in rows]
    numeric = [
        all(_is_number(row[i]) for row in rows if row[i] is not None) and bool(rows) for i in range(len(headers))
    ]
    text = tabulate(
        cells,
        headers=headers,
        tablefmt="simple",
        disable_numparse=True,
        colalign=["right" if n else "left" for n in numeric],
    )
    if max(map(len, text.splitlines()), default=0) <= width:
        return text
    name_width = max(map(len, headers))
    blocks = []
    for number, row in enumerate(cells, 1):
        lines = [f"-[ record {number} ]".ljust(min(width, name_width + 20), "-")]
        lines += [f"{name.ljust(name_width)} | {cell}" for name, cell in zip(headers, row, strict=True)]
        blocks.append("\n".join(lines))
    return "\n".join(blocks) if blocks else text


def _is_number(value: object) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def readable(value: object) -> str:
    """One cell as people read it: numbers rounded with thousands separators, times to the second in one format
    (the session is UTC), a struct as its values and a list as its items (a reason and its points: "error_rate
    24.77"), never a Python repr."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float | Decimal):
        return _number(float(value))
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, dict):
        return " ".join(readable(item) for item in value.values())
    if isinstance(value, list | tuple):
        return ", ".join(readable(item) for item in value)
    return str(_plain(value))


def _number(value: float) -> str:
    """Four significant digits, whole numbers from 1,000 on, with thousands separators."""
    if value != value or value in (float("inf"), float("-inf")):  # NaN and infinities as DuckDB spells them
        return str(value)
    if abs(value) >= 10 ** (SIGNIFICANT_DIGITS - 1):
        return f"{value:,.0f}"
    return f"{value:.{SIGNIFICANT_DIGITS}g}"


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
