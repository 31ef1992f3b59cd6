"""Open the DuckLake: the one place that knows how to attach the lake, for writers and readers alike.

The `ducklake`, `sqlite`, `postgres` and `httpfs` extensions come from pinned PyPI wheels (installed into DuckDB's
extension directory on first use), so nothing is downloaded at run time. A SQLite catalog lets the loader, Dagster
runs and SRE queries work side by side with snapshot isolation; a Postgres catalog and an object-store data path are
chosen by settings alone; an `s3://` data path gets a DuckDB S3 secret per connection from the LEO_FLEET_S3_*
settings.
"""

from __future__ import annotations

import fcntl
import os
import random
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import duckdb_extensions

from ingest.settings import Settings

LAKE_ALIAS = "lake"


def _load_extensions(con: duckdb.DuckDBPyConnection, catalog: str, data_path: str = "") -> None:
    """Install (from its pinned `duckdb-extension-<name>` wheel, never downloaded) and load what the catalog and the
    data path need: `httpfs` for an object store."""
    wanted = ["ducklake", "postgres" if catalog.startswith("postgres:") else "sqlite"]
    if _object_store(data_path):
        wanted.append("httpfs")
    installed: set[str] = set()
    for name, aliases in con.execute(
        "SELECT extension_name, aliases FROM duckdb_extensions() WHERE installed"
    ).fetchall():
        installed |= {name, *aliases}  # `sqlite` installs as `sqlite_scanner`, `postgres` as `postgres_scanner`
    for name in wanted:
        if name not in installed:
            duckdb_extensions.import_extension(name, con=con)
        con.execute(f"LOAD {name}")


def _object_store(data_path: str) -> bool:
    return data_path.startswith("s3://")


def _create_s3_secret(con: duckdb.DuckDBPyConnection, settings: Settings) -> None:
    """The session's S3 secret from the settings (endpoint, region, URL style, SSL, credentials). The credentials are
    bound parameters: they are in no SQL text, log or error message of ours."""
    options, values = settings.s3.secret_options()
    con.execute(f"CREATE SECRET leo_fleet_s3 ({options})", values)


class LakeNotFoundError(FileNotFoundError):
    """A reader asked for a lake nobody has created yet: no SQLite catalog file, or a catalog database (PostgreSQL)
    without DuckLake's metadata tables. A FileNotFoundError, so callers handle both catalogs alike."""


# Creating a lake is one catalog transaction (DuckLake's metadata tables and first snapshot), and each process that
# finds no lake tries it. On a fresh PostgreSQL catalog the losers fail with a unique violation in `pg_type` (or
# "already exists"); on SQLite with "database is locked". The winner's lake is complete once they see the error,
# so attaching again succeeds: retried a bounded number of times with jittered backoff.
_CREATION_FAILED = "Failed to initialize DuckLake"
_CREATION_RACE = ("duplicate key value violates unique constraint", "already exists", "database is locked")
_NOT_CREATED = "creating a new DuckLake is explicitly disabled"  # a READ_ONLY attach of a catalog with no lake
ATTACH_ATTEMPTS = 8
BACKOFF_FIRST_S = 0.05
BACKOFF_MAX_S = 1.0


def connect(
    settings: Settings | None = None,
    *,
    read_only: bool = False,
    idle: duckdb.DuckDBPyConnection | None = None,
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB session with the lake attached as `lake` and selected as the default catalog.

    Readers pass `read_only=True`: the attachment then refuses every write, whatever SQL they send, and a lake that
    does not exist yet raises LakeNotFoundError (one line, for either catalog). Writers create the lake on first
    use; any number of processes may do that at the same moment (docs/reliability.md, "First start").

    `idle`, a `session(settings)` with no lake attached (see `detach`), is attached instead of a new session: loading
    the signed extensions into a new DuckDB instance verifies ~70 MB of signatures (~0.3 s).
    """
    settings = settings or Settings.from_env()
    catalog = settings.catalog
    if catalog.startswith("sqlite:"):
        catalog_path = Path(catalog.removeprefix("sqlite:"))
        if read_only and not catalog_path.exists():
            raise LakeNotFoundError(_not_created(catalog))
        catalog_path.parent.mkdir(parents=True, exist_ok=True)
    if not read_only and "://" not in settings.data_path:
        Path(settings.data_path).mkdir(parents=True, exist_ok=True)
    options = [f"DATA_PATH '{settings.data_path}'"]
    if catalog.startswith("sqlite:"):
        # WAL: readers neither block nor get "database is locked" while the loader commits; the busy timeout
        # makes a writer wait for another writer's commit instead of failing at once.
        options += ["META_JOURNAL_MODE 'WAL'", "META_BUSY_TIMEOUT 5000"]
    if read_only:
        options.append("READ_ONLY")
    attach = f"ATTACH 'ducklake:{catalog}' AS {LAKE_ALIAS} ({', '.join(options)})"
    with catalog_lock(settings, shared=read_only):
        attempt = 1
        while True:
            con, idle = idle or session(settings), None
            try:
                con.execute(attach)
                con.execute(f"USE {LAKE_ALIAS}")
                return con
            except duckdb.Error as exc:
                con.close()  # a fresh session per attempt: a failed ATTACH may leave its metadata database behind
                message = str(exc)
                if read_only and _NOT_CREATED in message:
                    raise LakeNotFoundError(_not_created(catalog)) from None
                lost_race = _CREATION_FAILED in message and any(race in message for race in _CREATION_RACE)
                if not lost_race or attempt == ATTACH_ATTEMPTS:
                    raise
            time.sleep(random.uniform(0.5, 1.0) * min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** (attempt - 1)))
            attempt += 1


def session(settings: Settings) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB session ready to attach the lake or its catalog database: the extensions the catalog and
    the data path need, and the S3 secret for an object-store data path."""
    # No progress bar: it goes to stdout and would corrupt machine-readable output (`leo-fleet sql --format csv`).
    con = duckdb.connect()
    try:
        con.execute("SET enable_progress_bar = false")
        _load_extensions(con, settings.catalog, settings.data_path)
        if _object_store(settings.data_path):
            _create_s3_secret(con, settings)
    except BaseException:
        con.close()
        raise
    return con


def lake_cursor(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """A second connection to the lake attached on `con`, for another thread or a reader beside a writer; a cursor
    starts in the `memory` catalog, so the lake is selected on it as `connect` selects it on `con`."""
    cursor = con.cursor()
    try:
        cursor.execute(f"USE {LAKE_ALIAS}")
    except BaseException:
        cursor.close()
        raise
    return cursor


def detach(con: duckdb.DuckDBPyConnection) -> None:
    """Detach the lake from a `connect` session and empty its cache of file blocks (turning the cache off and on
    does): `connect(idle=...)` then attaches the lake to a session that reads as a new one would."""
    con.execute("USE memory")
    con.execute(f"DETACH {LAKE_ALIAS}")
    con.execute("SET enable_external_file_cache = false")
    con.execute("SET enable_external_file_cache = true")


@contextmanager
def catalog_lock(settings: Settings, *, shared: bool = False) -> Iterator[None]:
    """Serialise lake creation between processes on one machine: an flock on `<catalog>.lock` (0600), next to a
    SQLite catalog; exclusive for writers (one of which may create the lake), shared for readers (who then never
    see a half-created catalog). Held only while attaching. A PostgreSQL catalog has no such file: its creation
    race is retried in `connect`. A reader that cannot create the lock file (a read-only directory) goes without.

    Also usable around other first-use DDL, e.g. `with catalog_lock(settings): ensure_tables(con)`.
    """
    if not settings.catalog.startswith("sqlite:"):
        yield
        return
    lock_path = Path(f"{settings.catalog.removeprefix('sqlite:')}.lock")
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError:
        if not shared:
            raise
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _not_created(catalog: str) -> str:
    if catalog.startswith("sqlite:"):
        where = catalog.removeprefix("sqlite:")
    else:
        # Name the database, never the whole connection string (it may carry a password).
        fields = dict(re.findall(r"(dbname|host|port)=(\S+)", catalog))
        where = f"{catalog.split(':', 1)[0]} catalog " + " ".join(f"{k}={v}" for k, v in fields.items())
    return f"no lake at {where.strip()}: run the loader or `leo-fleet demo` first"
