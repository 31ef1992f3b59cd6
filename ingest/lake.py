"""Open the DuckLake: the one place that knows how to attach the lake, for writers and readers alike.

The `ducklake` and `sqlite` extensions come from pinned PyPI wheels (installed into DuckDB's extension
directory on first use), so nothing is downloaded at run time. A SQLite catalog lets the loader, Dagster runs and
SRE queries work side by side with snapshot isolation; a Postgres catalog and an object-store data path are
chosen by settings alone.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import duckdb_extensions

from ingest.settings import Settings, restrict_new_files

LAKE_ALIAS = "lake"
_EXTENSIONS = ("ducklake", "sqlite")


def _load_extensions(con: duckdb.DuckDBPyConnection, catalog: str) -> None:
    wanted = [*_EXTENSIONS, *(["postgres"] if catalog.startswith("postgres:") else [])]
    installed = {
        name for (name,) in con.execute("SELECT extension_name FROM duckdb_extensions() WHERE installed").fetchall()
    }
    for name in wanted:
        if name not in installed:
            if name in _EXTENSIONS:
                duckdb_extensions.import_extension(name, con=con)
            else:
                con.execute(f"INSTALL {name}")
        con.execute(f"LOAD {name}")


def connect(settings: Settings | None = None, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB session with the lake attached as `lake` and selected as the default catalog.

    Readers pass `read_only=True`: the attachment then refuses every write, whatever SQL they send.
    """
    settings = settings or Settings.from_env()
    restrict_new_files()
    catalog = settings.catalog
    if catalog.startswith("sqlite:"):
        catalog_path = Path(catalog.removeprefix("sqlite:"))
        if read_only and not catalog_path.exists():
            raise FileNotFoundError(f"no lake at {catalog_path}: run the loader or `leo-fleet demo` first")
        catalog_path.parent.mkdir(parents=True, exist_ok=True)
    if "://" not in settings.data_path:
        Path(settings.data_path).mkdir(parents=True, exist_ok=True)
    # No progress bar: it goes to stdout and would corrupt machine-readable output (`leo-fleet sql --format csv`).
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    _load_extensions(con, catalog)
    options = [f"DATA_PATH '{settings.data_path}'"]
    if catalog.startswith("sqlite:"):
        # WAL: readers neither block nor get "database is locked" while the loader commits; the busy timeout
        # makes a writer wait for another writer's commit instead of failing at once.
        options += ["META_JOURNAL_MODE 'WAL'", "META_BUSY_TIMEOUT 5000"]
    if read_only:
        options.append("READ_ONLY")
    con.execute(f"ATTACH 'ducklake:{catalog}' AS {LAKE_ALIAS} ({', '.join(options)})")
    con.execute(f"USE {LAKE_ALIAS}")
    return con
