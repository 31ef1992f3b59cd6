"""Install the SQL twins of models/ (models/sql/*.sql) into a DuckDB connection the caller opened.

models/ never imports duckdb: the lake code, the CLI's `sql` command, Dagster assets or an SRE's own session
pass their connection in, so SQL users get the same merge, quantile and SLI answers as Python callers.
"""

from __future__ import annotations

import re
from importlib import resources
from typing import Protocol

SQL_DIR = resources.files("models").joinpath("sql")  # package data: a wheel carries it
# A statement ends with a semicolon at the end of a line (the convention of the files in SQL_DIR).
_STATEMENT_END = re.compile(r";[ \t]*$", re.MULTILINE)


class Connection(Protocol):
    def execute(self, query: str, *args: object) -> object: ...


def statements(text: str) -> list[str]:
    """The SQL statements of one file, without comment-only fragments."""
    pieces = (piece.strip() for piece in _STATEMENT_END.split(text))
    code = (piece for piece in pieces if piece)
    return [piece for piece in code if any(not line.lstrip().startswith("--") for line in piece.splitlines())]


def install_macros(con: Connection) -> list[str]:
    """Create (or replace) every macro in SQL_DIR on `con`; returns their names, for logging and tests."""
    names = []
    for path in sorted((p for p in SQL_DIR.iterdir() if p.name.endswith(".sql")), key=lambda p: p.name):
        for statement in statements(path.read_text()):
            con.execute(statement)
            match = re.search(r"MACRO\s+(\w+)", statement)
            if match:
                names.append(match[1])
    return names
