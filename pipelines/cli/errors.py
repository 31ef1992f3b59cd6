"""One-line errors for bad input: a user who mistypes an argument gets a sentence, never a traceback.

Every number an argument takes has an upper bound as well as a lower one, so an absurd value (a trillion
controllers, 1e300) is refused before it reaches numpy instead of failing deep inside it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import NoReturn

from ingest.settings import MAX_PORT

# Exit statuses: 2 for anything the user can fix (arguments, settings, paths); 1 for a run that failed anyway.
EXIT_USAGE = 2
EXIT_FAILURE = 1


class CliError(Exception):
    """A problem the user can fix; `main` prints it as one line and exits with status 2."""


class OneLineArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {one_line(message)} (see --help)", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def one_line(text: str) -> str:
    """`text` with every run of whitespace (newlines included) folded into one space."""
    return " ".join(str(text).split())


def whole_number(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a whole number from `low` to `high`."""

    def parse(text: str) -> int:
        value = _parse(int, text, "a whole number")
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be a whole number from {low:,} to {high:,}, got {text!r}")
        return value

    return parse


def number(low: float, high: float) -> Callable[[str], float]:
    """An argparse type: a number above `low` (exclusive) and at most `high`."""

    def parse(text: str) -> float:
        value = _parse(float, text, "a number")
        if not low < value <= high:  # NaN fails too
            raise argparse.ArgumentTypeError(f"must be a number above {low:g} and at most {high:g}, got {text!r}")
        return value

    return parse


def _parse(kind: type, text: str, what: str):
    """`kind(text)` for ASCII text only: Python also reads other scripts' digits ('٣' is 3), a user never means to."""
    try:
        if not text.isascii():
            raise ValueError(text)
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None


def listen_arguments(parser: argparse.ArgumentParser, host: str, port: int) -> None:
    """`--host` and `--port` of a command that serves HTTP: loopback by default, a port from 1 to 65,535."""
    parser.add_argument("--host", default=host, help=f"address to listen on (default: {host})")
    parser.add_argument(
        "--port", type=whole_number(1, MAX_PORT), default=port, help=f"port to listen on (default: {port})"
    )
