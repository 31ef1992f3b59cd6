"""`leo-fleet`: one entry point whose subcommands each live in their own module of this package.

Subcommand modules import their heavy dependencies inside their run functions, so `leo-fleet --help` and a
mistyped argument answer instantly.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from ingest.settings import Settings, SettingsError, restrict_new_files
from pipelines.cli.errors import EXIT_FAILURE, EXIT_USAGE, CliError, OneLineArgumentParser, one_line

# Subcommand name -> module exposing `register(subparsers)`.
SUBCOMMAND_MODULES = (
    "pipelines.cli.simulate",
    "pipelines.cli.broker",
    "pipelines.cli.ingest",
    "pipelines.cli.load",
    "pipelines.cli.sql",
    "pipelines.cli.report",
    "pipelines.cli.demo",
    "pipelines.cli.evaluate",
    "pipelines.cli.collect",
    "pipelines.cli.ui",
    "pipelines.cli.exporter",
    "pipelines.cli.slo",
    "pipelines.cli.live",
)


def build_parser() -> argparse.ArgumentParser:
    settings = Settings.from_env()
    parser = OneLineArgumentParser(
        prog="leo-fleet",
        description="Fleet telemetry and RAS analytics for CXL memory-expansion controllers.",
        epilog=(
            f"Data directory (lake, reports, local broker state): {settings.data_dir} "
            "(set LEO_FLEET_DATA_DIR to change it)."
        ),
    )
    subparsers = parser.add_subparsers(dest="command", required=True, parser_class=OneLineArgumentParser)
    for module_name in SUBCOMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; anything the user can fix ends as one line on stderr and exit status 2."""
    restrict_new_files()
    try:
        args = build_parser().parse_args(argv)
    except SettingsError as exc:  # the parser's help text reads the settings
        return _fail("leo-fleet", exc, EXIT_USAGE)
    name = f"leo-fleet {args.command}"
    try:
        return int(args.run(args) or 0)
    except (CliError, SettingsError) as exc:
        return _fail(name, exc, EXIT_USAGE)
    except OSError as exc:  # a path that cannot be created, read or written: the data dir, --out, --data-dir
        return _fail(name, _describe(exc), EXIT_USAGE)
    except MemoryError:
        return _fail(name, "out of memory", EXIT_FAILURE)
    except Exception as exc:
        if not _is_database_error(exc):
            raise
        return _fail(name, exc, EXIT_FAILURE)
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return 130


def _fail(name: str, problem: object, status: int) -> int:
    print(f"{name}: error: {one_line(str(problem))}", file=sys.stderr)
    return status


def _is_database_error(exc: Exception) -> bool:
    """A DuckDB error that reached the top, e.g. a catalog that cannot be attached (a PostgreSQL server that is
    down, a file that is not a database). Looked up lazily: if no command imported duckdb, it cannot be one."""
    duckdb = sys.modules.get("duckdb")
    return duckdb is not None and isinstance(exc, duckdb.Error)


def _describe(exc: OSError) -> str:
    """'cannot use /proc/nope: No such file or directory', or the error itself when it names no file."""
    if exc.filename is None:
        return str(exc)
    return f"cannot use {exc.filename}: {exc.strerror or exc}"


if __name__ == "__main__":
    sys.exit(main())
