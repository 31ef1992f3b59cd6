"""SQL for SREs, persisted in the lake: the `sre` views and table macros of views.sql and models/sql's histogram
macros, so any DuckDB client that attaches the lake (and `USE`s it) gets the same answers as the report.

DuckLake stores views and macros in its catalog. A view binds its tables when it is created, so a view whose
tables do not exist yet (e.g. the health scores before the baseline was fitted) is skipped and named; the next run
creates it. Everything is CREATE OR REPLACE in one transaction, retried while it fails to commit: re-running is
harmless.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from importlib import resources

import duckdb

from ingest.lake.raw_tables import retry_transaction
from models.sql_macros import install_macros, statements

VIEWS_FILE = resources.files(__name__).joinpath("views.sql")  # package data: a wheel carries it
SCHEMA = "sre"
_TABLE_REFERENCE = re.compile(r"\b(raw|marts)\.(\w+)")
_CREATED = re.compile(rf"\b(?:VIEW|MACRO)\s+{SCHEMA}\.(\w+)", re.IGNORECASE)


@dataclass(frozen=True)
class Installed:
    macros: list[str]
    views: list[str]  # views and table macros of views.sql, in file order
    skipped: dict[str, list[str]]  # name -> the missing tables it needs


def _existing_tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    rows = con.execute(
        "SELECT schema_name || '.' || table_name FROM duckdb_tables() WHERE database_name = current_database()"
    )
    return {name for (name,) in rows.fetchall()}


def install_views(con: duckdb.DuckDBPyConnection, give_up_after_s: float = 60.0) -> Installed:
    """Create or replace the histogram macros (in the lake's main schema) and every `sre` object of views.sql.

    One transaction, run again while it fails to commit: on a SQLite catalog a writer committing at the same moment
    (a loader creating the raw tables on a fresh lake) makes the COMMIT fail with "database is locked"."""
    installed, _ = retry_transaction(lambda: _install(con), give_up_after_s)
    return installed


def _install(con: duckdb.DuckDBPyConnection) -> Installed:
    existing = _existing_tables(con)  # read again on a retry: the tables a view needs may exist by then
    views, skipped = [], {}
    con.execute("BEGIN TRANSACTION")
    try:
        macros = install_macros(con)
        for statement in statements(VIEWS_FILE.read_text()):
            created = _CREATED.search(statement)
            missing = sorted({".".join(m) for m in _TABLE_REFERENCE.findall(statement)} - existing)
            name = created[1] if created else None
            if name and (missing or any(f"{SCHEMA}.{s}" in statement for s in skipped)):
                skipped[name] = missing or [f"{SCHEMA}.{s}" for s in skipped if f"{SCHEMA}.{s}" in statement]
                continue
            con.execute(statement)
            if name:
                views.append(name)
        con.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(duckdb.TransactionException):  # a failed COMMIT has already rolled back
            con.execute("ROLLBACK")
        raise
    return Installed(macros, views, skipped)
