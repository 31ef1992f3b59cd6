"""`leo-fleet`: one entry point whose subcommands each live in their own module of this package.

Subcommand modules import their heavy dependencies inside their run functions, so `leo-fleet --help` and a
mistyped argument answer instantly.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from ingest.settings import Settings, restrict_new_files
from pipelines.cli.errors import CliError, OneLineArgumentParser

# Subcommand name -> module exposing `register(subparsers)`.
SUBCOMMAND_MODULES = (
    "pipelines.cli.simulate",
    "pipelines.cli.broker",
    "pipelines.cli.ingest",
    "pipelines.cli.load",
    "pipelines.cli.sql",
    "pipelines.cli.report",
    "pipelines.cli.demo",
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
    restrict_new_files()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except CliError as exc:
        print(f"leo-fleet {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"leo-fleet {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
