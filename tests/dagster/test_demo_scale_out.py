"""`leo-fleet demo` on the scale-out lake (issue 18): a PostgreSQL catalog (real server) and an S3 data path (real
SeaweedFS), run twice in a row with the same options. The second run replaces the first, catalog included: the same
raw rows, none twice, every mart with the same row count, and no Parquet file of the first run left in the bucket;
the commands it prints carry the lake settings and run as printed."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import uuid
from pathlib import Path

import pytest

from ingest import lake
from ingest.kafka.broker import free_port
from ingest.settings import ENV_PREFIX, Settings
from tests.conftest import DEMO_START
from tests.ingest.kafka.helpers import CLI, NATURAL_KEYS, duplicates, provenance_duplicates
from tests.postgres import PostgresServer
from tests.s3 import S3Server
from tests.sample_lake import REPO

pytestmark = pytest.mark.kafka
CONTROLLERS = 6
DEMO = ["demo", "--controllers", str(CONTROLLERS), "--hours", "1", "--seed", "3", "--start", DEMO_START]
TELEMETRY = ("errors", "link", "latency", "inventory")
# raw.latency also holds each host's local-DRAM baseline, with the host name as controller_id.
CONTROLLERS_ONLY = {"latency": "memory_tier <> 'local_dram'"}


def _demo(env: dict[str, str]) -> tuple[int, str]:
    """One demo run: the telemetry rows it says it loaded, and its output."""
    done = subprocess.run([*CLI, *DEMO], env=env, capture_output=True, text=True, timeout=300, check=False, cwd=REPO)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    (loaded,) = re.findall(r"^\s+([\d,]+) rows, [\d,]+ quarantined", done.stdout, re.M)
    return int(loaded.replace(",", "")), done.stdout


def _controllers(settings: Settings) -> dict[str, int]:
    """Distinct controllers in each telemetry table and in the health scores."""
    con = lake.connect(settings, read_only=True)
    try:
        counted = {
            name: con.execute(
                f"SELECT count(DISTINCT controller_id) FILTER ({CONTROLLERS_ONLY.get(name, 'true')}) FROM raw.{name}"
            ).fetchone()[0]
            for name in TELEMETRY
        }
        counted["health_scores"] = con.execute(
            "SELECT count(DISTINCT controller_id) FROM marts.health_scores"
        ).fetchone()[0]
    finally:
        con.close()
    return counted


def _lake_state(settings: Settings) -> tuple[dict[str, int], set[str], set[str]]:
    """(rows per raw and mart table, files the catalog lists, Parquet files under the data path in the bucket)."""
    con = lake.connect(settings, read_only=True)
    try:
        tables = con.execute(
            "SELECT table_schema, table_name FROM information_schema.tables WHERE table_catalog = 'lake' "
            "AND table_type = 'BASE TABLE' AND (table_schema = 'marts' OR table_name IN ?)",
            [list(NATURAL_KEYS)],
        ).fetchall()
        # Full scans (not counts from metadata): every file the catalog lists must open.
        counts = {
            f"{schema}.{name}": con.execute(f"SELECT count(*) FROM {schema}.{name}").fetchone()[0]
            for schema, name in tables
        }
        listed = {
            path
            for schema, name in tables
            for data_file, delete_file in con.execute(
                "SELECT data_file, delete_file FROM ducklake_list_files('lake', ?, schema => ?)", [name, schema]
            ).fetchall()
            for path in (data_file, delete_file)
            if path
        }
        in_bucket = {
            path
            for (path,) in con.execute("SELECT file FROM glob(?)", [f"{settings.data_path}**/*.parquet"]).fetchall()
        }
    finally:
        con.close()
    return counts, listed, in_bucket


def test_demo_twice_on_postgres_and_s3_leaves_the_same_marts(
    postgres: PostgresServer, s3: S3Server, tmp_path: Path
) -> None:
    catalog = postgres.catalog(postgres.create_database("demo_s3"))
    data_path = s3.data_path(f"demo-{uuid.uuid4().hex[:8]}")
    data_dir = tmp_path / "demo"
    env = {key: value for key, value in os.environ.items() if not key.startswith((ENV_PREFIX, "KAFKA_"))}
    env |= {
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
        f"{ENV_PREFIX}DATA_DIR": str(data_dir),
        f"{ENV_PREFIX}LAKE_CATALOG": catalog,
        f"{ENV_PREFIX}LAKE_DATA_PATH": data_path,
        **s3.env(),
    }
    settings = Settings.from_env(env)  # what the demo sees: the catalog, the data path, the object store

    first_loaded, _ = _demo(env)
    first_counts, first_files, _ = _lake_state(settings)
    second_loaded, out = _demo(env)
    counts, listed, in_bucket = _lake_state(settings)

    raw = {f"raw.{name}" for name in NATURAL_KEYS}
    marts = {table for table in counts if table.startswith("marts.")}
    assert second_loaded == first_loaded == sum(counts[table] for table in raw) > 0
    assert duplicates(settings) == dict.fromkeys(NATURAL_KEYS, 0)
    assert provenance_duplicates(settings) == dict.fromkeys(["ledger", *NATURAL_KEYS], 0)
    assert marts and sum(counts[table] for table in marts) > 0, counts
    assert counts == first_counts  # the same demo again: the same rows in every raw table and mart
    assert listed and listed <= in_bucket  # every file the catalog lists is in the bucket
    assert first_files and not first_files & in_bucket  # none left from the first run
    assert _controllers(settings) == dict.fromkeys([*TELEMETRY, "health_scores"], CONTROLLERS)  # the one fleet, scored

    # The printed commands carry the lake settings: run the SQL one as printed, with none of them in the environment.
    commands = [line for line in out.splitlines() if ".venv/bin/" in line]
    assert commands and all(f"{ENV_PREFIX}LAKE_CATALOG='{catalog}'" in line for line in commands)
    assert all(f"{ENV_PREFIX}LAKE_DATA_PATH={shlex.quote(data_path)}" in line for line in commands)
    sql = next(line for line in commands if "leo-fleet sql" in line).split("SQL:", 1)[1].strip()
    shell_env = {key: value for key, value in env.items() if not key.startswith(ENV_PREFIX)}
    done = subprocess.run(["bash", "-c", sql], env=shell_env, capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    # The fleet's controllers (a row per line, or a record per block when the table is wider than the output).
    assert len(set(re.findall(r"\b0x[0-9a-f]{16}\b", done.stdout))) == CONTROLLERS
