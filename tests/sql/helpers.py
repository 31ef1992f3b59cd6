"""Opening the shared lake the way SREs do: through `leo-fleet sql`'s locked-down session, or from a plain DuckDB
connection that only ATTACHes the lake (no project code involved)."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb

from ingest import lake
from ingest.settings import Settings
from pipelines.cli.sql import lock_down

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "sql.md"
# "### 3. Question?", a blank line, a ```sql block, a blank line, "Columns: `a`, `b`."
_QUESTION = re.compile(r"^### (\d+)\. (.+?)\n\n```sql\n(.*?)```\n\nColumns: (.+?)\.\n", re.S | re.M)


def documented_queries() -> list[tuple[int, str, str, list[str]]]:
    """(number, question, SQL, documented columns) of every question in docs/sql.md."""
    return [
        (int(number), question, sql, re.findall(r"`([^`]+)`", columns))
        for number, question, sql, columns in _QUESTION.findall(DOC.read_text())
    ]


def sre_session(data_dir: Path) -> duckdb.DuckDBPyConnection:
    """What `leo-fleet sql` opens: the lake attached read-only, then locked down."""
    settings = Settings().with_data_dir(data_dir)
    con = lake.connect(settings, read_only=True)
    lock_down(con, settings)
    return con


def plain_duckdb(data_dir: Path, alias: str = "warehouse") -> duckdb.DuckDBPyConnection:
    """A fresh DuckDB session that knows nothing of this project: LOAD the extensions, ATTACH, USE."""
    settings = Settings().with_data_dir(data_dir)
    con = duckdb.connect()
    con.execute("LOAD ducklake; LOAD sqlite")
    con.execute(f"ATTACH 'ducklake:{settings.catalog}' AS {alias} (DATA_PATH '{settings.data_path}', READ_ONLY)")
    return con
