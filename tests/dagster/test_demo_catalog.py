"""The demo's own lake catalog on PostgreSQL (a real server from the `postgres` fixture) or SQLite: replaced when it
is the demo's, refused when it is not. The demo run twice on a PostgreSQL catalog is test_demo_scale_out's."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.lake import connect
from ingest.settings import ENV_PREFIX, Settings
from pipelines.demo import MARKER, DemoError, catalog_state, mask_secrets, prepare_data_dir, shell_env
from tests.postgres import PostgresServer


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
