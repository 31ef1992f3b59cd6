"""The one-command demo: local broker → simulated fleet on Kafka → exactly-once loader → every asset → SLO report.

Everything runs against real components: the Tansu broker from the pinned wheel, the loader's consumer group, a
DuckLake under the data directory, and Dagster runs recorded in an instance under <data dir>/dagster (with the
package's dagster.yaml), so `dagster dev` afterwards shows the history, metadata and checks of this run.
"""

from __future__ import annotations

import re
import shlex
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from ingest.kafka import broker
from ingest.lake import LAKE_ALIAS, session
from ingest.settings import ENV_PREFIX, PARTITIONS_START_ENV, Settings
from pipelines.lib.demo_span import MARKER, default_start, write_marker
from pipelines.lib.instance import BIN, UI_HOST, UI_PORT, install_instance_config
from pipelines.lib.partitions import Window, partitions_start
from pipelines.lib.resources import LakeResource
from pipelines.lib.stream_status import raw_events, read_loader, read_streams
from pipelines.materialize import QUIET_RUN, Stage, StageRun, materialize_span, stages
from pipelines.reports import period_window, report_directory
from pipelines.reports.pilot import PILOT_HTML
from pipelines.reports.serve import report_url

# A catalog outside the data directory (LEO_FLEET_LAKE_CATALOG: a PostgreSQL database, or a SQLite file elsewhere)
# carries its own marker: a table of this name beside DuckLake's metadata tables (all named `ducklake_*`).
CATALOG_MARKER = "leo_fleet_demo"
METADATA_ALIAS = "demo_catalog"


class DemoError(Exception):
    """A condition the user can fix (shown as one line by the CLI)."""


@dataclass(frozen=True)
class DemoOptions:
    controllers: int = 500
    hours: float = 24.0
    seed: int = 7
    start: datetime | None = None  # default: the `hours` before the last midnight UTC
    fresh: bool = False  # replace a lake the demo did not create


def check_span(span: Window, now: datetime | None = None) -> None:
    """The span must lie inside the hourly partitions: after their start, and over by now."""
    first = datetime.fromisoformat(partitions_start()).replace(tzinfo=UTC)
    if span.start < first:
        raise DemoError(
            f"--start {span.start:%Y-%m-%d %H:%M} is before the partitions start ({first:%Y-%m-%d}); "
            f"set {PARTITIONS_START_ENV} earlier"
        )
    if span.end > (now or datetime.now(UTC)):
        raise DemoError(f"the span ends in the future ({span.end:%Y-%m-%d %H:%M} UTC): pick an earlier --start")


def prepare_data_dir(data_dir: Path, fresh: bool, settings: Settings | None = None, span: Window | None = None) -> None:
    """Clear the previous demo's outputs; refuse to touch a lake the demo did not write unless `fresh`.

    With the default catalog the lake is a directory under the data directory. A catalog set elsewhere
    (LEO_FLEET_LAKE_CATALOG) is emptied too: else it would still list the data files deleted here, and the next
    run would fail to open them. Both guards are checked before anything is deleted."""
    settings = (settings or Settings()).with_data_dir(data_dir)
    lake_dir = settings.lake_dir
    if lake_dir.exists() and not (data_dir / MARKER).exists() and not fresh:
        raise DemoError(
            f"{lake_dir} holds a lake the demo did not create; pass --fresh to replace it or --data-dir for another"
        )
    external = settings.lake_catalog is not None and not _inside(settings.catalog, lake_dir)
    state = catalog_state(settings) if external else "empty"
    if state == "foreign" and not fresh:
        raise DemoError(
            f"{catalog_label(settings)} holds a lake the demo did not create; pass --fresh to replace it, "
            f"or set {ENV_PREFIX}LAKE_CATALOG to another"
        )
    if state != "empty":
        empty_catalog(settings)
    for output in (settings.lake_dir, settings.model_dir, settings.reports_dir, settings.dagster_home):
        shutil.rmtree(output, ignore_errors=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    write_marker(data_dir, None if span is None else (span.start, span.end))
    if external:
        mark_catalog(settings)


def _inside(catalog: str, lake_dir: Path) -> bool:
    """A SQLite catalog file under the data directory's lake/: removed with it, like the default one."""
    return catalog.startswith("sqlite:") and Path(catalog.removeprefix("sqlite:")).resolve().is_relative_to(
        lake_dir.resolve()
    )


def catalog_label(settings: Settings) -> str:
    """The catalog for a message, its password masked."""
    return f"the lake catalog {mask_secrets(settings.catalog)}"


def _metadata_session(settings: Settings) -> duckdb.DuckDBPyConnection:
    """A DuckDB session with the catalog's own database (not the lake in it) attached as METADATA_ALIAS."""
    kind, target = settings.catalog.split(":", 1)
    con = session(settings)
    try:
        con.execute(f"ATTACH '{target}' AS {METADATA_ALIAS} (TYPE {'postgres' if kind == 'postgres' else 'sqlite'})")
    except BaseException:
        con.close()
        raise
    return con


def _catalog_tables(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    """(schema, table) of DuckLake's metadata tables and the demo's marker in the catalog's database."""
    return con.execute(
        "SELECT table_schema, table_name FROM information_schema.tables WHERE table_catalog = ? "
        "AND (starts_with(table_name, 'ducklake_') OR table_name = ?)",
        [METADATA_ALIAS, CATALOG_MARKER],
    ).fetchall()


def _sqlite_catalog_missing(settings: Settings) -> bool:
    return settings.catalog.startswith("sqlite:") and not Path(settings.catalog.removeprefix("sqlite:")).exists()


def catalog_state(settings: Settings) -> str:
    """Whose lake the catalog holds: `empty` (none), `demo` (one the demo created) or `foreign`."""
    if _sqlite_catalog_missing(settings):
        return "empty"  # never create the file just to look
    con = _metadata_session(settings)
    try:
        names = {name for _, name in _catalog_tables(con)}
    finally:
        con.close()
    if "ducklake_metadata" not in names:
        return "empty"
    return "demo" if CATALOG_MARKER in names else "foreign"


def empty_catalog(settings: Settings) -> None:
    """Delete the lake in the catalog, files and metadata, leaving a catalog `lake.connect` creates a lake in anew.

    Through DuckLake first, so its data files go wherever they are (the data path stored in the catalog: a local
    directory or an object store): drop every table, expire every snapshot, delete every file no snapshot needs
    (files already gone are skipped). Then drop DuckLake's metadata tables (including inlined data) and the marker.
    """
    con = session(settings)
    try:
        con.execute(f"ATTACH 'ducklake:{settings.catalog}' AS {LAKE_ALIAS}")  # no DATA_PATH: the one it stores
        tables = con.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_catalog = ? AND table_type = 'BASE TABLE'",
            [LAKE_ALIAS],
        ).fetchall()
        for schema, table in tables:
            con.execute(f"DROP TABLE {LAKE_ALIAS}.{_ident(schema)}.{_ident(table)}")
        con.execute(f"CALL ducklake_expire_snapshots('{LAKE_ALIAS}', older_than => now() + INTERVAL 1 DAY)")
        con.execute(f"CALL ducklake_cleanup_old_files('{LAKE_ALIAS}', cleanup_all => true)")
    except duckdb.Error as exc:
        raise DemoError(f"could not empty {catalog_label(settings)}: {mask_secrets(str(exc))}") from None
    finally:
        con.close()
    con = _metadata_session(settings)
    try:
        con.execute("BEGIN")
        for schema, table in _catalog_tables(con):
            con.execute(f"DROP TABLE {METADATA_ALIAS}.{_ident(schema)}.{_ident(table)}")
        con.execute("COMMIT")
    finally:
        con.close()


def mark_catalog(settings: Settings) -> None:
    """Mark the (empty) catalog as the demo's: the next run may replace the lake created in it."""
    con = _metadata_session(settings)
    try:
        con.execute(
            f"CREATE OR REPLACE TABLE {METADATA_ALIAS}.{CATALOG_MARKER} AS "
            "SELECT 'the DuckLake in this database holds `leo-fleet demo` output; the demo replaces it' AS note"
        )
    finally:
        con.close()


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# libpq's `password=...` (conninfo) and `user:password@` (URI) forms.
_PASSWORD = re.compile(r"(\bpassword\s*=\s*)(\S+)", re.IGNORECASE)
_URI_PASSWORD = re.compile(r"(://[^:/@\s]*:)([^@\s]+)(@)")
MASK = "****"


def mask_secrets(text: str) -> str:
    """The text with any password a catalog connection string carries replaced by MASK."""
    return _URI_PASSWORD.sub(rf"\g<1>{MASK}\g<3>", _PASSWORD.sub(rf"\g<1>{MASK}", text))


def shell_env(settings: Settings) -> str:
    """The settings the printed commands need, as shell assignments: the data directory, and the catalog and data
    path when set (quoted; a password masked)."""
    values = {f"{ENV_PREFIX}DATA_DIR": str(settings.data_dir)}
    if settings.lake_catalog:
        values[f"{ENV_PREFIX}LAKE_CATALOG"] = mask_secrets(settings.lake_catalog)
    if settings.lake_data_path:
        values[f"{ENV_PREFIX}LAKE_DATA_PATH"] = settings.lake_data_path
    return " ".join(f"{name}={shlex.quote(value)}" for name, value in values.items())


def dagster_home(data_dir: Path) -> Path:
    """<data dir>/dagster with the package's instance config, as `dagster dev` will find it."""
    return install_instance_config(Settings().with_data_dir(data_dir).dagster_home)


@contextmanager
def local_broker(settings: Settings, console: Console):
    """The local broker for the duration of the demo: reused if running, else started and stopped afterwards.
    A bootstrap server that is not on this machine is used as it is."""
    try:
        broker.configured_port(settings)
    except broker.BrokerError:
        console.print(f"Kafka: using {settings.kafka.bootstrap_servers}")
        yield
        return
    already = broker.status(settings).running
    status = broker.start(settings)
    console.print(f"Kafka: local broker on {status.bootstrap_servers} ({'running' if already else 'started'})")
    try:
        yield
    finally:
        if not already:
            broker.stop(settings)


def _reset_topics(settings: Settings) -> None:
    """Empty telemetry topics, so the fresh lake loads this run's telemetry only."""
    from kafka import KafkaAdminClient

    from ingest.kafka.topics import TELEMETRY_TOPICS, ensure_topics

    admin = KafkaAdminClient(**settings.kafka.client_config())
    try:
        existing = [topic for topic in admin.list_topics() if topic in TELEMETRY_TOPICS]
        if existing:
            admin.delete_topics(existing)
    finally:
        admin.close()
    deadline = time.monotonic() + 10
    while True:  # deletion is asynchronous on some brokers: retry creation briefly
        try:
            ensure_topics(settings)
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _progress(console: Console) -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


def stream_fleet(settings: Settings, options: DemoOptions, start: datetime, console: Console) -> int:
    """Simulate the fleet onto the telemetry topics; returns the rows published."""
    from ingest.kafka.publish import publish_simulation
    from ingest.sim.config import SimConfig
    from ingest.sim.simulator import Simulation

    simulation = Simulation(
        SimConfig(controllers=options.controllers, hours=options.hours, seed=options.seed, start=start)
    )
    _reset_topics(settings)
    with _progress(console) as progress:
        task = progress.add_task("simulate → Kafka", total=simulation.n_chunks)
        summary = publish_simulation(settings, simulation, on_chunk=lambda chunk: progress.advance(task))
    console.print(
        f"  {summary.rows:,} rows in {summary.messages:,} messages ({summary.bytes / 1e6:,.0f} MB) "
        f"in {summary.seconds:.0f} s; {summary.truth_rows:,} ground-truth faults written to the lake"
    )
    return summary.rows


def load(settings: Settings, expected_rows: int, console: Console) -> dict:
    """Run the exactly-once loader until the topics are drained."""
    from ingest.lake.loader import Loader, LoaderOptions

    with _progress(console) as progress:
        task = progress.add_task("Kafka → lake (loader)", total=expected_rows)
        final = Loader(
            settings,
            LoaderOptions(follow=False),
            on_status=lambda status: progress.update(task, completed=status["rows_total"]),
        ).run()
        progress.update(task, completed=final["rows_total"])
    console.print(
        f"  {final['rows_total']:,} rows, {final['quarantined_total']:,} quarantined, in {final['elapsed_s']:.0f} s"
    )
    return final


def materialize_everything(data_dir: Path, span: Window, console: Console) -> list[StageRun]:
    """Every asset over the span, stage by stage, recorded in the demo's Dagster instance."""
    from pipelines.definitions import defs

    instance = dg.DagsterInstance.from_config(str(dagster_home(data_dir)))
    definitions = defs()
    # The data directory may come from --data-dir: given outright; the catalog and data path as the environment's.
    lake = LakeResource.from_environment(data_dir=str(data_dir))
    # What the loader wrote, recorded as loader_observer would: the raw tables show their rows and watermarks.
    with lake.connection(read_only=True) as con:
        events = raw_events(read_streams(con), read_loader(con), {}, datetime.now(UTC))
    for event in events:
        instance.report_runless_asset_event(event)
    with _progress(console) as progress:
        task = progress.add_task("Dagster assets", total=len(stages(definitions)) + 1)

        def started(stage: Stage) -> None:
            progress.update(task, description=f"Dagster {stage.label}")

        def done(run: StageRun) -> None:
            progress.advance(task)
            scope = "one run" if run.stage.partitions_def is None else f"{run.partitions} partitions"
            progress.console.print(f"  {run.stage.label}: {scope} in {run.seconds:.0f} s")

        runs = materialize_span(definitions, lake, span, instance, on_stage=started, on_done=done)
        progress.update(task, description="Dagster raw-table checks")
        definitions.resolve_job_def("raw_checks").execute_in_process(
            instance=instance, resources={"lake": lake}, run_config=QUIET_RUN
        )
        progress.advance(task)
    return runs


def where_to_look(data_dir: Path, span: Window, console: Console, settings: Settings | None = None) -> None:
    settings = (settings or Settings()).with_data_dir(data_dir)
    last_day = period_window("day", (span.end - timedelta(seconds=1)).date())
    report = report_directory(settings.reports_dir, "day", last_day) / "report.md"
    env = shell_env(settings)
    # The programs of the environment that ran the demo, so the commands run as printed from any directory.
    leo_fleet = shlex.quote(str(BIN / "leo-fleet"))
    lines = [
        "",
        "[bold]Where to look[/bold]",
        f"  Dagster UI:  {env} {leo_fleet} ui --host {UI_HOST} --port {UI_PORT}",
        f"               then open http://{UI_HOST}:{UI_PORT} (asset graph, metadata, checks, run history)",
        f"  SLO report:  {report_url(settings, report.with_suffix('.html'))} (served while the UI runs; in the UI,",
        "               the `html` link of reports/slo_report and of each partition of it)",
        f"               files: {report.with_suffix('.html')}, summary {report}, CSV tables and charts alongside",
        f"               any other day, week or month: {env} {leo_fleet} report --date D --period week",
        f"  Pilot:       {report_url(settings, settings.reports_dir / PILOT_HTML)} (CXL against local DRAM, by class;",
        f"               reports/pilot_report in the UI; again: {env} {leo_fleet} report --pilot; docs/pilot.md)",
        f'  SQL:         {env} {leo_fleet} sql -c "SELECT controller_id, health, top_reasons[1].reason AS reason, '
        'top_reasons[1].why AS why FROM sre.fleet_health ORDER BY health LIMIT 10"',
        "               or interactively: leo-fleet sql; the views and questions answered in SQL: docs/sql.md",
    ]
    if settings.lake_catalog and mask_secrets(settings.lake_catalog) != settings.lake_catalog:
        lines.append(f"  (the catalog's password is shown as {MASK}: put it back, or use PGPASSWORD or ~/.pgpass)")
    for line in lines:
        console.print(line, soft_wrap=True)  # commands stay on one line, ready to copy


def run_demo(settings: Settings, options: DemoOptions, console: Console) -> list[StageRun]:
    started = time.perf_counter()
    start = options.start or default_start(options.hours)
    span = Window(start, start + timedelta(hours=options.hours))
    check_span(span)
    data_dir = settings.data_dir
    prepare_data_dir(data_dir, options.fresh, settings, span)
    console.print(f"[bold]leo-fleet demo[/bold]: {options.controllers} controllers x {options.hours:g} h, {span}")
    console.print(f"Data directory: {data_dir}")
    if settings.lake_catalog:
        console.print(f"Lake catalog: {mask_secrets(settings.lake_catalog)}")
    with local_broker(settings, console):
        rows = stream_fleet(settings, options, start, console)
        load(settings, rows, console)
    runs = materialize_everything(data_dir, span, console)
    console.print(f"[green]Done in {time.perf_counter() - started:.0f} s.[/green]")
    where_to_look(data_dir, span, console, settings)
    return runs
