"""Shared pieces of the Kafka tests: seeded simulations, reading the lake back, running the CLI in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from dataclasses import replace

import pyarrow as pa
import pyarrow.compute as pc

from ingest import contract, lake
from ingest.kafka.publish import PublishSummary, publish_simulation
from ingest.lake.loader import Loader, LoaderOptions
from ingest.lake.raw_tables import ensure_tables
from ingest.settings import ENV_PREFIX, S3Settings, Settings
from ingest.sim.config import SimConfig
from ingest.sim.simulator import Simulation

STREAMS = tuple(contract.TIME_COLUMNS)  # every stream placed in time
# Natural key of each raw table: what "no duplicates" means for the data, independent of Kafka offsets.
NATURAL_KEYS = {
    **{contract.TABLE_NAMES[topic]: keys for topic, keys in contract.NATURAL_KEYS.items()},
    "inventory": ("controller_id",),
    "maintenance": ("controller_id", "start_ts"),
}


# Maintenance windows per host-day that make an hour-long run declare some (the default rate declares one per host
# every ten days): for tests of the maintenance stream itself.
BUSY_CALENDAR = 24.0


def simulation(
    controllers: int, hours: float, seed: int = 7, maintenance_per_host_day: float | None = None
) -> Simulation:
    """A seeded run with the default confounders (at `maintenance_per_host_day`, when given)."""
    config = SimConfig(controllers=controllers, hours=hours, seed=seed)
    if maintenance_per_host_day is not None:
        knobs = replace(config.confounders, maintenance_per_host_day=maintenance_per_host_day)
        config = replace(config, confounders=knobs)
    return Simulation(config)


def simulated_streams(sim: Simulation) -> dict[str, pa.Table]:
    """Every telemetry row of the simulation, per topic (inventory included)."""
    chunks = list(sim.chunks())
    streams = {topic: pa.concat_tables([getattr(c, contract.TABLE_NAMES[topic]) for c in chunks]) for topic in STREAMS}
    return {**streams, contract.TOPIC_INVENTORY: sim.inventory}


def every_stream(sim: Simulation) -> dict[str, pa.Table]:
    """`simulated_streams` and the declared maintenance windows: every topic's rows."""
    return {**simulated_streams(sim), contract.TOPIC_MAINTENANCE: sim.maintenance}


def create_tables(settings: Settings) -> None:
    """The raw tables, so a test can count rows before any loader has created them."""
    con = lake.connect(settings)
    try:
        ensure_tables(con)
    finally:
        con.close()


def start_publishing(settings: Settings, sim: Simulation, seconds: float) -> tuple[threading.Thread, dict]:
    """Publish the whole simulation in a thread, paced to take about `seconds`; the dict gets its summary."""
    published: dict[str, PublishSummary] = {}
    speed = sim.config.hours * 3600 / seconds
    producer = threading.Thread(target=lambda: published.update(summary=publish_simulation(settings, sim, speed=speed)))
    producer.start()
    return producer, published


def in_own_group(settings: Settings) -> Settings:
    """The same settings in a consumer group of their own, for a final drain after loaders were SIGKILLed.

    On the local broker a new member of a group that lost members to SIGKILL was seen waiting minutes for
    partitions (docs/reliability.md, "Open: a new member after SIGKILLed ones"). Exactly-once does not depend on
    the group: a loader resumes from the lake's watermarks, not the group's offsets, so a new group proves the same.
    """
    return replace(settings, kafka=replace(settings.kafka, consumer_group=f"{settings.kafka.consumer_group}-drain"))


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
    """Telemetry rows in the lake, every stream of the contract."""
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
    """The environment a `leo-fleet` subprocess needs to see what `settings` describe: data dir, broker, group and,
    when set, the lake's catalog, data path and object store."""
    lake_location = {
        f"{ENV_PREFIX}LAKE_{name}": value
        for name, value in (("CATALOG", settings.lake_catalog), ("DATA_PATH", settings.lake_data_path))
        if value
    }
    return {
        **os.environ,
        "LEO_FLEET_DATA_DIR": str(settings.data_dir),
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "LEO_FLEET_CONSUMER_GROUP": settings.kafka.consumer_group,
        **lake_location,
        **s3_env(settings.s3),
    }


def s3_env(s3: S3Settings) -> dict[str, str]:
    """The LEO_FLEET_S3_* and AWS_* variables that `Settings.from_env` reads back into `s3` (unset fields left out)."""
    use_ssl = None if s3.use_ssl is None else str(s3.use_ssl).lower()
    named = {
        f"{ENV_PREFIX}S3_ENDPOINT": s3.endpoint,
        f"{ENV_PREFIX}S3_REGION": s3.region,
        f"{ENV_PREFIX}S3_URL_STYLE": s3.url_style,
        f"{ENV_PREFIX}S3_USE_SSL": use_ssl,
        "AWS_ACCESS_KEY_ID": s3.key_id,
        "AWS_SECRET_ACCESS_KEY": s3.secret,
    }
    return {name: value for name, value in named.items() if value is not None}


def provenance_duplicates(settings: Settings) -> dict[str, int]:
    """Messages stored more than once: ledger entries beyond the first per position, and per raw table the
    (topic, partition, offset) groups beyond the ledger's count of messages that went to it."""
    ledger = lake_count(
        settings,
        "SELECT count(*) - count(DISTINCT (kafka_topic, kafka_partition, kafka_offset)) FROM raw.ingest_messages",
    )
    tables = {
        name: lake_count(
            settings,
            f"""SELECT (SELECT count(DISTINCT (kafka_topic, kafka_partition, kafka_offset)) FROM raw.{name})
                     - (SELECT count(*) FROM raw.ingest_messages WHERE table_name = '{name}')""",
        )
        for name in NATURAL_KEYS
    }
    return {"ledger": ledger, **tables}


def assert_exactly(settings: Settings, produced_rows: int) -> None:
    """Every produced row stored once: the count matches, no natural key twice, no Kafka message stored twice."""
    assert stored_rows(settings) == produced_rows
    assert duplicates(settings) == dict.fromkeys(NATURAL_KEYS, 0)
    assert provenance_duplicates(settings) == dict.fromkeys(["ledger", *NATURAL_KEYS], 0)


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
