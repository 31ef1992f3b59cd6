"""`leo-fleet demo` on a PostgreSQL catalog (a real server from the `postgres` fixture), run twice in a row: the
second run replaces the first one's lake, catalog included, and the commands it prints carry the catalog setting."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from ingest.kafka.broker import free_port
from ingest.lake import connect
from ingest.settings import ENV_PREFIX, Settings
from pipelines.demo import MARKER, DemoError, catalog_state, mask_secrets, prepare_data_dir, shell_env
from tests.conftest import DEMO_START
from tests.ingest.kafka.helpers import CLI
from tests.postgres import PostgresServer
from tests.sample_lake import REPO

RAW = ("errors", "link", "latency", "inventory")  # the loaded telemetry tables
# raw.latency also holds each host's local-DRAM baseline, with the host name as controller_id.
CONTROLLERS_ONLY = {"latency": "memory_tier <> 'local_dram'"}


def _demo(env: dict[str, str], controllers: int, seed: int) -> str:
    args = ["demo", "--controllers", str(controllers), "--hours", "1", "--seed", str(seed), "--start", DEMO_START]
    done = subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=300, check=False, cwd=REPO)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done.stdout


def _lake_files(settings: Settings) -> tuple[set[str], set[str]]:
    """(files the lake's catalog lists, Parquet files on disk under its data path)."""
    con = connect(settings, read_only=True)
    try:
        tables = con.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_catalog = 'lake' AND table_type = 'BASE TABLE'"
        ).fetchall()
        listed: set[str] = set()
        for schema, table in tables:
            for data_file, delete_file in con.execute(
                "SELECT data_file, delete_file FROM ducklake_list_files('lake', ?, schema => ?)", [table, schema]
            ).fetchall():
                listed |= {data_file} | ({delete_file} if delete_file else set())
    finally:
        con.close()
    on_disk = {str(path) for path in Path(settings.data_path).rglob("*.parquet")}
    return listed, on_disk


@pytest.mark.kafka
def test_demo_runs_twice_on_a_postgres_catalog(postgres: PostgresServer, tmp_path: Path) -> None:
    catalog = postgres.catalog(postgres.create_database("demo"))
    data_dir = tmp_path / "demo"
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(ENV_PREFIX) and not key.startswith("KAFKA_")
    }
    env |= {
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
        f"{ENV_PREFIX}DATA_DIR": str(data_dir),
        f"{ENV_PREFIX}LAKE_CATALOG": catalog,
    }
    settings = Settings(lake_catalog=catalog).with_data_dir(data_dir)
    _demo(env, controllers=10, seed=1)
    first_files, _ = _lake_files(settings)
    out = _demo(env, controllers=6, seed=2)  # a smaller fleet: any row left from the first run would show

    (loaded,) = (int(n.replace(",", "")) for n in re.findall(r"^\s+([\d,]+) rows, [\d,]+ quarantined", out, re.M))
    con = connect(settings, read_only=True)
    try:
        # Full scans (not counts from metadata): every file the catalog lists must open.
        stored = {
            name: con.execute(
                f"SELECT count(*), count(DISTINCT controller_id) FILTER ({CONTROLLERS_ONLY.get(name, 'true')}) "
                f"FROM raw.{name}"
            ).fetchone()
            for name in RAW
        }
        (scored,) = con.execute("SELECT count(DISTINCT controller_id) FROM marts.health_scores").fetchone()
        (jobs,) = con.execute("SELECT count(*) FROM raw.jobs").fetchone()  # the pilot's jobs: keyed by host
        (snapshots,) = con.execute("SELECT count(*) FROM ducklake_snapshots('lake')").fetchone()
    finally:
        con.close()
    assert sum(rows for rows, _ in stored.values()) + jobs == loaded
    assert {name: controllers for name, (_, controllers) in stored.items()} == dict.fromkeys(RAW, 6)
    assert scored == 6
    listed, on_disk = _lake_files(settings)
    assert listed and listed <= on_disk  # no file missing
    assert first_files and not first_files & on_disk  # none left from the first run
    assert snapshots > 0

    # The printed commands carry the catalog: run the SQL one as printed, with no lake setting in the environment.
    commands = [line for line in out.splitlines() if ".venv/bin/" in line]
    assert commands and all(f"{ENV_PREFIX}LAKE_CATALOG='{catalog}'" in line for line in commands)
    sql = next(line for line in commands if "leo-fleet sql" in line).split("SQL:", 1)[1].strip()
    shell_env = {key: value for key, value in env.items() if not key.startswith(ENV_PREFIX)}
    done = subprocess.run(["bash", "-c", sql], env=shell_env, capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    # The second fleet's controllers (a row per line, or a record per block when the table is wider than the output).
    assert len(set(re.findall(r"\b0x[0-9a-f]{16}\b", done.stdout))) == 6


def _write_table(settings: Settings, rows: int) -> None:
    con = connect(settings)
    try:
        con.execute(f"CREATE SCHEMA IF NOT EXISTS raw; CREATE TABLE raw.t AS SELECT range AS i FROM range({rows})")
    finally:
        con.close()


@pytest.mark.parametrize("kind", ["postgres", "sqlite"])
def test_demo_replaces_its_own_catalog_but_not_a_foreign_one(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if kind == "postgres":
        server: PostgresServer = request.getfixturevalue("postgres")
        catalog = server.catalog(server.create_database("guard"))
    else:
        catalog = f"sqlite:{tmp_path / 'elsewhere' / 'catalog.sqlite'}"
    data_dir = tmp_path / "demo"
    (data_dir).mkdir()
    (data_dir / MARKER).write_text("the data dir is the demo's, the catalog is not\n")
    settings = Settings(lake_catalog=catalog, lake_data_path=f"{tmp_path / 'files'}/").with_data_dir(data_dir)
    _write_table(settings, 1000)
    assert catalog_state(settings) == "foreign"
    with pytest.raises(DemoError, match="--fresh") as refused:
        prepare_data_dir(data_dir, fresh=False, settings=settings)
    assert "lake catalog" in str(refused.value)
    assert list((tmp_path / "files").rglob("*.parquet"))  # untouched
    prepare_data_dir(data_dir, fresh=True, settings=settings)
    assert catalog_state(settings) == "empty"
    assert not list((tmp_path / "files").rglob("*.parquet"))  # deleted through DuckLake, outside the data dir
    _write_table(settings, 7)  # a lake created anew in the emptied catalog, now marked as the demo's
    assert catalog_state(settings) == "demo"
    prepare_data_dir(data_dir, fresh=False, settings=settings)
    _write_table(settings, 3)
    con = connect(settings, read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM raw.t").fetchone() == (3,)
    finally:
        con.close()


def test_printed_settings_mask_a_catalog_password(tmp_path: Path) -> None:
    assert mask_secrets("postgres:dbname=lake password=s3cret host=db") == "postgres:dbname=lake password=**** host=db"
    assert mask_secrets("postgres:postgresql://leo:s3cret@db/lake") == "postgres:postgresql://leo:****@db/lake"
    settings = Settings(lake_catalog="postgres:dbname=lake password=s3cret host=db", lake_data_path="s3://b/lake/")
    env = shell_env(settings.with_data_dir(tmp_path))
    assert "s3cret" not in env
    assert env == (
        f"{ENV_PREFIX}DATA_DIR={tmp_path} {ENV_PREFIX}LAKE_CATALOG='postgres:dbname=lake password=**** host=db' "
        f"{ENV_PREFIX}LAKE_DATA_PATH=s3://b/lake/"
    )
