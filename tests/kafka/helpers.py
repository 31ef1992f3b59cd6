"""Shared pieces of the Kafka tests: seeded simulations, reading the lake back, running the CLI in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys

import pyarrow as pa
import pyarrow.compute as pc

from ingest import contract, lake
from ingest.loader import Loader, LoaderOptions
from ingest.settings import Settings
from ingest.sim_config import SimConfig
from ingest.simulator import Simulation

STREAMS = (contract.TOPIC_ERRORS, contract.TOPIC_LINK, contract.TOPIC_LATENCY)
# Natural key of each raw table: what "no duplicates" means for the data, independent of Kafka offsets.
NATURAL_KEYS = {
    "errors": ("event_id",),
    "link": ("controller_id", "port", "ts", "event"),
    "latency": ("controller_id", "window_start", "memory_tier", "head_or_ld", "op"),
    "inventory": ("controller_id",),
}


def simulation(controllers: int, hours: float, seed: int = 7) -> Simulation:
    return Simulation(SimConfig(controllers=controllers, hours=hours, seed=seed))


def simulated_streams(sim: Simulation) -> dict[str, pa.Table]:
    """Every telemetry row of the simulation, per topic (inventory included)."""
    chunks = list(sim.chunks())
    streams = {topic: pa.concat_tables([getattr(c, contract.TABLE_NAMES[topic]) for c in chunks]) for topic in STREAMS}
    return {**streams, contract.TOPIC_INVENTORY: sim.inventory}


def run_loader(settings: Settings, **options: object) -> dict:
    return Loader(settings, LoaderOptions(**{"idle_s": 1.0, **options})).run()


def lake_rows(settings: Settings, table_name: str, columns: list[str] | None = None) -> pa.Table:
    con = lake.connect(settings, read_only=True)
    try:
        con.execute("SET TimeZone = 'UTC'")
        selected = ", ".join(f'"{c}"' for c in columns) if columns else "*"
        return con.execute(f"SELECT {selected} FROM raw.{table_name}").to_arrow_table()
    finally:
        con.close()


def lake_count(settings: Settings, sql: str) -> int:
    con = lake.connect(settings, read_only=True)
    try:
        return con.execute(sql).fetchone()[0]
    finally:
        con.close()


def duplicates(settings: Settings) -> dict[str, int]:
    """Rows beyond the first per natural key, per raw table."""
    return {
        name: lake_count(settings, f"SELECT count(*) - count(DISTINCT ({', '.join(keys)})) FROM raw.{name}")
        for name, keys in NATURAL_KEYS.items()
    }


def stored_rows(settings: Settings) -> int:
    """Telemetry rows in the lake, all four streams."""
    return sum(lake_count(settings, f"SELECT count(*) FROM raw.{name}") for name in contract.TABLE_NAMES.values())


def without_dictionaries(table: pa.Table) -> pa.Table:
    """Dictionary columns as plain strings: two encodings of the same values compare equal."""
    return as_stored(table, lake_types=False)


def as_stored(table: pa.Table, lake_types: bool = True) -> pa.Table:
    """What DuckDB stores for a contract table: strings for dictionaries, microsecond UTC timestamps, BLOB ids."""
    columns = []
    for field in table.schema:
        column = table.column(field.name)
        if pa.types.is_timestamp(field.type) and lake_types:
            column = pc.cast(column, pa.timestamp("us", tz="UTC"), safe=False)
        elif pa.types.is_dictionary(field.type):
            column = column.cast(pa.string())
        elif pa.types.is_list(field.type) and pa.types.is_dictionary(field.type.value_type):
            column = column.cast(pa.list_(pa.string()))
        elif pa.types.is_fixed_size_binary(field.type) and lake_types:
            column = column.cast(pa.binary())
        columns.append(column)
    return pa.table(columns, names=table.schema.names)


def sorted_by(table: pa.Table, keys: tuple[str, ...]) -> pa.Table:
    return table.sort_by([(key, "ascending") for key in keys])


def cli_env(settings: Settings) -> dict[str, str]:
    catalog = {"LEO_FLEET_LAKE_CATALOG": settings.lake_catalog} if settings.lake_catalog else {}
    return {
        **os.environ,
        "LEO_FLEET_DATA_DIR": str(settings.data_dir),
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "LEO_FLEET_CONSUMER_GROUP": settings.kafka.consumer_group,
        **catalog,
    }


CLI = [sys.executable, "-c", "import sys; from pipelines.cli import main; sys.exit(main())"]


def run_cli(settings: Settings, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CLI, *args], env=cli_env(settings), capture_output=True, text=True, timeout=timeout, check=False
    )


def run_main(settings: Settings, monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """`leo-fleet ARGS` in this process (no interpreter start-up): exit status, stdout, stderr."""
    from pipelines.cli import main

    for name, value in cli_env(settings).items():
        if name.startswith(("LEO_FLEET_", "KAFKA_")):
            monkeypatch.setenv(name, value)
    capsys.readouterr()
    status = main(list(args))
    captured = capsys.readouterr()
    return status, captured.out, captured.err
