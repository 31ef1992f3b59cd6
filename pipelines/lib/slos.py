"""The SLO spec as the pipelines use it: the packaged slos.yaml (this package's data, read with importlib.resources
at every run, so an installed wheel has it too), and one SLI event series per SLO in the lake.

Every SLO's series lands in one mart with its group (a controller, a rack, or the whole fleet) as a string, so the
marts have one shape whatever each SLO groups by; `series_for` turns the rows back into models.slo.sli's layout.
"""

from __future__ import annotations

from datetime import timedelta
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import yaml

from ingest.contract import TABLE_NAMES, TIME_COLUMNS, TOPIC_MAINTENANCE, TS, described
from models.health import HealthPolicy
from models.rollup import with_inventory
from models.slo.sli import events_query, latency_series
from models.slo.spec import EventsSli, Slo, SpecError, SpecFields, duration_s, parse_slos
from pipelines.lib.partitions import Window
from pipelines.lib.telemetry import first_copies, raw_table

# The one SLO spec file, package data beside its only reader (architecture.md: one module owns each fact).
SLO_SPEC = files("pipelines.lib") / "slos.yaml"
HEALTH_SECTION = "health"
HEALTH_COSTS = ("missed_failure", "false_alarm")
RECOVERY_SECTION = "recovery"
RECOVERY_OBJECTIVES = ("reset_detection_s", "link_recovery_s")
# SLI series resolution: divides every burn window (5m … 4d) and keeps a fleet-day of per-controller series small.
STEP_S = 300
FLEET = "fleet"
INVENTORY_COLUMNS = ("host", "rack", "region", "firmware_version")
_TOPIC_OF_TABLE = {name: topic for topic, name in TABLE_NAMES.items()}
SLI_SCHEMA = pa.schema(
    [
        described("slo", pa.string(), "the SLO's name (slos.yaml)", nullable=False),
        described("group_key", pa.string(), "the group: a controller id, a rack, ... or fleet", nullable=False),
        described("ts", TS, "start of the evaluation step (UTC)", nullable=False),
        described("good", pa.int64(), "good events in the step", nullable=False),
        described("total", pa.int64(), "all events in the step", nullable=False),
    ]
)


def read_spec_document(path: Path | Traversable) -> object:
    """The YAML document of a spec file (slos.yaml, pilot.yaml); SpecError names the file on a read or YAML error."""
    try:
        return yaml.safe_load(path.read_text())
    except OSError as exc:
        raise SpecError(f"{path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None


def load_slos(path: Path | Traversable) -> tuple[Slo, ...]:
    """Read and validate a spec file; SpecError names the file on an unreadable or malformed one."""
    document = read_spec_document(path)
    if isinstance(document, dict):  # the health section is the health score's policy, not an SLO
        document = {key: value for key, value in document.items() if key not in (HEALTH_SECTION, RECOVERY_SECTION)}
    return parse_slos(document, str(path))


def load() -> tuple[Slo, ...]:
    """The packaged spec: what every SLO asset, the report and the health features measure against."""
    return load_slos(SLO_SPEC)


def load_health_policy(path: Path | Traversable = SLO_SPEC) -> HealthPolicy:
    """The spec file's `health` section: the alarm costs behind the health score's and early warning's alarm line."""
    document = read_spec_document(path)
    if not isinstance(document, dict) or HEALTH_SECTION not in document:
        raise SpecError(f"{path}: no '{HEALTH_SECTION}' section (the health score's alarm_costs)")
    section = SpecFields(document[HEALTH_SECTION], f"{path}: {HEALTH_SECTION}", ("alarm_costs",))
    costs = SpecFields(section.get("alarm_costs", dict), f"{path}: {HEALTH_SECTION}.alarm_costs", HEALTH_COSTS)
    missed, false = (float(costs.get(name, (int, float))) for name in HEALTH_COSTS)
    if not (missed > 0 and false > 0):
        raise costs.error("missed_failure", "costs must be positive numbers")
    return HealthPolicy(missed_failure_cost=missed, false_alarm_cost=false)


def load_recovery_objectives(path: Path | Traversable = SLO_SPEC) -> dict[str, float]:
    """The spec file's `recovery` section: seconds within which a reset must be detected and a dropped link be
    back at full speed and width (the pilot report measures against them)."""
    document = read_spec_document(path)
    if not isinstance(document, dict) or RECOVERY_SECTION not in document:
        raise SpecError(f"{path}: no '{RECOVERY_SECTION}' section ({', '.join(RECOVERY_OBJECTIVES)})")
    section = SpecFields(document[RECOVERY_SECTION], f"{path}: {RECOVERY_SECTION}", RECOVERY_OBJECTIVES)
    objectives = {name: float(section.get(name, (int, float))) for name in RECOVERY_OBJECTIVES}
    for name, seconds in objectives.items():
        if seconds <= 0:
            raise section.error(name, "must be a positive number of seconds")
    return objectives


def lookback(slos: tuple[Slo, ...]) -> timedelta:
    """History every alert tier needs at the start of a window: the longest long window of any SLO."""
    return timedelta(seconds=max(duration_s(tier.long) for slo in slos for tier in slo.tiers))


def longest_period(slos: tuple[Slo, ...]) -> timedelta:
    """History the overview needs before an hour end: the longest rolling period (budget window) of any SLO."""
    return timedelta(seconds=max(slo.period_s for slo in slos))


def _group_column(slo: Slo) -> str | None:
    """The one column an SLO groups by (None = fleet-wide); the marts' group_key holds one dimension."""
    if len(slo.group_columns) > 1:
        raise ValueError(f"SLO {slo.name!r}: the SLO marts support one group_by dimension, not {list(slo.group_by)}")
    return slo.group_columns[0] if slo.group_columns else None


def keyed(table: pa.Table, slo: Slo) -> pa.Table:
    """`table` (an SLI series or an SLO evaluation) with its group column replaced by leading `slo`, `group_key`."""
    column = _group_column(slo)
    key = table.column(column).cast(pa.string()) if column else pa.array([FLEET] * table.num_rows, pa.string())
    rest = table.drop_columns([c for c in (column, "slo") if c and c in table.column_names])
    names = pa.array([slo.name] * table.num_rows, pa.string())
    return pa.Table.from_arrays([names, key, *rest.columns], names=["slo", "group_key", *rest.column_names])


def latest_inventory(inventory: pa.Table) -> pa.Table:
    """One row per controller: the attributes of its latest deployment."""
    ids = pa.table({"controller_id": pc.unique(inventory.column("controller_id"))})
    return with_inventory(ids, inventory, INVENTORY_COLUMNS)


def _raw_rows(table: str) -> str:
    """SQL for the rows of `raw.<table>` in the window bound as $start and $end: DuckDB reads only the columns the
    SLI names, where reading the table into Arrow would read them all. Rows stored twice count once."""
    topic = _TOPIC_OF_TABLE[table]
    column = TIME_COLUMNS[topic]
    return f"(SELECT * FROM {raw_table(topic)} WHERE {column} >= $start AND {column} < $end AND {first_copies(topic)})"


def sli_series(
    con: duckdb.DuckDBPyConnection, slo: Slo, latency: pa.Table, window: Window, inventory: pa.Table
) -> pa.Table:
    """Good/total events of `slo` per group and STEP_S step in `window`: a latency SLO from the window's `latency`
    rows, an events SLO in DuckDB from its raw table, without the events inside declared maintenance windows."""
    if isinstance(slo.sli, EventsSli):
        con.register("sli_inventory", latest_inventory(inventory))
        try:
            query = events_query(
                slo, _raw_rows(slo.sli.table), "sli_inventory", STEP_S, maintenance=raw_table(TOPIC_MAINTENANCE)
            )
            series = con.execute(query, {"start": window.start, "end": window.end}).to_arrow_table()
        finally:
            con.unregister("sli_inventory")
    else:
        series = latency_sli(slo, latency, inventory)
    return keyed(series, slo).select(SLI_SCHEMA.names).cast(SLI_SCHEMA)


def latency_sli(slo: Slo, latency: pa.Table, inventory: pa.Table) -> pa.Table:
    """Good/total events of a latency SLO per group and STEP_S step from `latency` rows, grouped by the inventory
    columns it names (models.slo.sli's layout: its group column, ts, good, total); the live path's too."""
    wanted = [c for c in slo.group_columns if c in INVENTORY_COLUMNS and c not in latency.column_names]
    rows = with_inventory(latency, inventory, wanted) if wanted else latency
    return latency_series(rows, slo, STEP_S)


def series_for(rows: pa.Table, slo: Slo) -> pa.Table:
    """Mart rows of `slo` alone (group_key, ts, good, total; any slo column ignored) in models.slo.sli's series
    layout (its group column, ts, good, total)."""
    columns = {"ts": rows.column("ts").cast(TS), "good": rows.column("good"), "total": rows.column("total")}
    column = _group_column(slo)
    return pa.table({column: rows.column("group_key"), **columns} if column else columns)
