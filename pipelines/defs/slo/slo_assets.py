"""SLOs from slos.yaml: the SLI event series, hourly compliance with burn rates, and alert episodes.

The SLI series (good/total events per group per 5 minutes) is the one place raw telemetry enters; one evaluation
reads it back one SLO at a time with the history the burn windows need (up to four days), and writes both
compliance and breaches. Nothing averages percentiles: every figure is a ratio of summed
event counts.
"""

from collections.abc import Iterator

import dagster as dg
import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ingest.contract import LATENCY_SCHEMA, TOPIC_LATENCY, TS, described
from models.series import NS_PER_HOUR
from models.slo.burn import Evaluation, evaluate
from models.slo.spec import BURN_WINDOWS, LatencySli, Slo
from pipelines.lib import slos as spec
from pipelines.lib.assets import AFTER_LOAD, mart_asset, mart_assets, mart_check, mart_spec, publish
from pipelines.lib.marts import MARTS, in_background, mart_key, read_ahead, read_window
from pipelines.lib.metadata import count_by, markdown_table
from pipelines.lib.partitions import Window, to_ns
from pipelines.lib.quality import HISTOGRAM_CHECK, HISTOGRAM_CHECK_DESCRIPTION, histogram_consistency
from pipelines.lib.resources import LakeResource
from pipelines.lib.telemetry import raw_key, read_chunks, read_inventory, read_stream

SLI = "slo_sli"
COMPLIANCE = "slo_compliance"
BREACHES = "slo_breaches"
GROUP = "slo"
# What a latency SLI reads of a latency row (models.slo.sli.latency_series), besides its group columns.
SLI_LATENCY_COLUMNS = ("window_start", "window_s", "memory_tier", "op", "count", "over_slo", "slo_threshold_ns")
BUCKET_COLUMNS = ("scale", "bucket_offset", "bucket_counts")

COMPLIANCE_SCHEMA = pa.schema(
    [
        described("slo", pa.string(), "the SLO's name (slos.yaml)", nullable=False),
        described("group_key", pa.string(), "the group: a controller id, a rack, ... or fleet", nullable=False),
        described("hour", TS, "start of the hour (UTC)", nullable=False),
        described("objective", pa.float64(), "target share of good events, percent", nullable=False),
        described("events", pa.int64(), "events in the hour", nullable=False),
        described("bad_events", pa.int64(), "bad events in the hour", nullable=False),
        described(
            "sli",
            pa.float64(),
            "good events / events in the hour; null when the hour had no events: unknown, not compliant",
        ),
        described("met", pa.bool_(), "true when the hour's SLI meets the objective; null without events"),
        *(described(f"burn_{w}", pa.float64(), f"burn rate over the {w} up to the hour's end") for w in BURN_WINDOWS),
        described(
            "state",
            pa.string(),
            "alert state at the end of the hour: ok, insufficient_data, ticket, page or absent",
            nullable=False,
        ),
    ]
)
BREACHES_SCHEMA = pa.schema(
    [
        described("slo", pa.string(), "the SLO's name (slos.yaml)", nullable=False),
        described("group_key", pa.string(), "the group: a controller id, a rack, ... or fleet", nullable=False),
        described(
            "kind", pa.string(), "what the episode was: page, ticket, insufficient_data or absent", nullable=False
        ),
        described("tier", pa.string(), "the burn pair that fired, long/short window, e.g. 1h/5m; null for other kinds"),
        described("factor", pa.float64(), "the pair's burn-rate threshold"),
        described("start", TS, "evaluation time the episode began (UTC)", nullable=False),
        described("end", TS, "when it ended (UTC); null while it still lasted at the end of the window"),
        described("peak_burn", pa.float64(), "the highest burn rate during the episode"),
    ]
)


def _describe_sli(series: pa.Table) -> dict[str, object]:
    per_slo = series.group_by("slo", use_threads=False).aggregate([("good", "sum"), ("total", "sum")])
    sli = pc.divide(per_slo["good_sum"].cast(pa.float64()), per_slo["total_sum"])
    return {"per_slo": markdown_table(per_slo.append_column("sli", sli).sort_by("sli"))}


def _read_latency(con: duckdb.DuckDBPyConnection, window: Window, slos: tuple[Slo, ...]) -> pa.Table:
    """The CXL latency rows of `window` with the columns latency SLIs read: the bucket lists (most of the bytes)
    only when an SLO's threshold is not the rows' exact over-threshold counter's."""
    groups = {column for slo in slos for column in slo.group_columns}
    columns = [name for name in LATENCY_SCHEMA.names if name in {*SLI_LATENCY_COLUMNS, *groups}]
    rows = read_stream(con, TOPIC_LATENCY, window, columns, "memory_tier = 'cxl'")
    thresholds = {slo.sli.threshold_ns for slo in slos if isinstance(slo.sli, LatencySli)}
    if all(pc.all(pc.equal(rows["slo_threshold_ns"], threshold)).as_py() for threshold in thresholds):
        return rows
    return read_stream(con, TOPIC_LATENCY, window, [*columns, *BUCKET_COLUMNS], "memory_tier = 'cxl'")


@mart_asset(
    SLI,
    group=GROUP,
    description="SLI event series of every SLO in slos.yaml: good and total events per group and 5-minute step "
    "(latency SLOs from the exact over-threshold counters, event SLOs from link or error rows outside declared "
    "maintenance windows).",
    schema=spec.SLI_SCHEMA,
    deps=[raw_key("latency"), raw_key("link"), raw_key("errors"), raw_key("inventory"), raw_key("maintenance")],
    automation_condition=AFTER_LOAD,
    check_specs=[mart_check(SLI, HISTOGRAM_CHECK, HISTOGRAM_CHECK_DESCRIPTION, blocking=True)],
)
def slo_sli(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    window = Window.of(context)
    slos = spec.load()
    with lake.connection() as con:
        inventory = read_inventory(con)
        parts = []
        with in_background(con, lambda cursor: histogram_consistency(cursor, window)) as consistency:
            chunks = read_chunks(con, window)
            latencies = read_ahead(con, chunks, lambda cursor, chunk: _read_latency(cursor, chunk, slos))
            for chunk, latency in zip(chunks, latencies, strict=True):
                parts += [spec.sli_series(con, slo, latency, chunk, inventory) for slo in slos]
            check = consistency.result().result(HISTOGRAM_CHECK)
        return publish(
            lake,
            SLI,
            pa.concat_tables(parts),
            window,
            "ts",
            con=con,
            describe=_describe_sli,
            check_results=[check],
        )


def _read_series(con: duckdb.DuckDBPyConnection, history: Window, slo: Slo) -> pa.Table:
    """The SLI series of one SLO over `history`, in models.slo.sli's layout. One SLO at a time and without the slo
    column: over a 10,000-controller fleet's burn-window history the per-controller SLO alone is some 10 M rows."""
    rows = read_window(
        con, f"{MARTS}.{SLI}", "ts", history, "group_key, ts, good, total", where="slo = $slo", params={"slo": slo.name}
    )
    return spec.series_for(rows, slo)


def _evaluations(
    con: duckdb.DuckDBPyConnection, window: Window, slos: tuple[Slo, ...]
) -> Iterator[tuple[Slo, Evaluation]]:
    """Each SLO with events in `window`'s history (the longest burn window of any SLO before it), evaluated."""
    history = window.widened(spec.lookback(slos))
    for slo in slos:
        series = _read_series(con, history, slo)
        if series.num_rows:
            yield slo, evaluate(series, slo, spec.STEP_S, until=window.end, timeline_at=hour_ends(window))


def _hourly_events(con: duckdb.DuckDBPyConnection, window: Window) -> pa.Table:
    """Good and total events per SLO, group and hour of `window`."""
    sql = f"""
        SELECT slo, group_key, time_bucket(INTERVAL 1 HOUR, ts) AS hour, sum(good)::BIGINT AS good,
               sum(total)::BIGINT AS events
        FROM {MARTS}.{SLI} WHERE ts >= $start AND ts < $end GROUP BY ALL"""
    rows = con.execute(sql, {"start": window.start, "end": window.end}).to_arrow_table()
    return rows.set_column(2, "hour", rows["hour"].cast(TS))


def hour_ends(window: Window) -> np.ndarray:
    """The evaluation times at which compliance is recorded: the end of every hour of `window` (int64 ns)."""
    return np.arange(to_ns(window.start) + NS_PER_HOUR, to_ns(window.end) + 1, NS_PER_HOUR, dtype=np.int64)


def _hour_end_states(evaluation: Evaluation, slo: Slo) -> pa.Table:
    """Burn rates and alert state of `slo` at the end of every hour the evaluation was asked for, per group."""
    at_end = spec.keyed(evaluation.timeline, slo)
    return pa.table(
        {
            "slo": at_end["slo"],
            "group_key": at_end["group_key"],
            "hour": pa.array(at_end["ts"].cast(pa.int64()).to_numpy() - NS_PER_HOUR, pa.int64()).cast(TS),
            "objective": pa.array(np.full(at_end.num_rows, slo.objective)),
            **{f"burn_{w}": at_end[f"burn_{w}"] for w in BURN_WINDOWS},
            "state": at_end["state"].cast(pa.string()),
        }
    )


def _compliance(states: pa.Table, hourly: pa.Table) -> pa.Table:
    """Hour-end states joined with the hour's events; a group without events in an hour has SLI null."""
    joined = states.join(hourly, ["slo", "group_key", "hour"], join_type="left outer")
    events = pc.fill_null(joined["events"], 0)
    good = pc.fill_null(joined["good"], 0)
    sli = pc.if_else(pc.greater(events, 0), pc.divide(good.cast(pa.float64()), events), None)
    columns = {
        **{name: joined[name] for name in ("slo", "group_key", "hour", "objective")},
        "events": events,
        "bad_events": pc.subtract(events, good),
        "sli": sli,
        "met": pc.greater_equal(sli, pc.divide(joined["objective"], 100.0)),
        **{f"burn_{w}": joined[f"burn_{w}"] for w in BURN_WINDOWS},
        "state": joined["state"],
    }
    return pa.table(columns, schema=COMPLIANCE_SCHEMA)


def _episodes(evaluation: Evaluation, slo: Slo) -> pa.Table:
    return spec.keyed(evaluation.episodes, slo).select(BREACHES_SCHEMA.names).cast(BREACHES_SCHEMA)


def _describe_compliance(rows: pa.Table) -> dict[str, object]:
    worst = rows.filter(pc.greater(rows["events"], 0)).sort_by([("sli", "ascending")])
    shown = ["slo", "group_key", "hour", "events", "bad_events", "sli", "burn_1h", "state"]
    return {
        "worst_group_hours": markdown_table(worst, shown),
        "states": markdown_table(count_by(rows, ["slo", "state"]), limit=40),
        # One group (a controller, a rack or the fleet) over one hour whose SLI fell short of its objective.
        "hours in which a group missed its objective": int(pc.sum(pc.invert(rows["met"])).as_py() or 0),
    }


def _describe_breaches(episodes: pa.Table) -> dict[str, object]:
    alerts = episodes.filter(pc.is_in(episodes["kind"], pa.array(["page", "ticket"])))
    return {
        "by_kind": markdown_table(count_by(episodes, ["slo", "kind"]), limit=40),
        "alerts": markdown_table(alerts.sort_by([("peak_burn", "descending")])),
    }


@mart_assets(
    "slo_evaluation",
    mart_spec(
        COMPLIANCE,
        group=GROUP,
        description="Per SLO, group and hour: events, bad events, the hour's SLI against the objective, and the "
        "burn rates and alert state (ok, insufficient_data, ticket, page, absent) at the end of the hour.",
        schema=COMPLIANCE_SCHEMA,
        deps=[mart_key(SLI)],
    ),
    mart_spec(
        BREACHES,
        group=GROUP,
        description="Alert episodes that began in the hour: multiwindow multi-burn-rate tiers firing (page, "
        "ticket), tiers held back by the minimum-events guard (insufficient_data), and groups without events "
        "(absent).",
        schema=BREACHES_SCHEMA,
        deps=[mart_key(SLI)],
    ),
)
def slo_evaluation(context: dg.AssetExecutionContext, lake: LakeResource):
    """One evaluation of every SLO over the window and its burn-window history feeds both marts: the hour-end
    states of compliance and the alert episodes of breaches come from the same grids."""
    window = Window.of(context)
    slos = spec.load()
    with lake.connection() as con:
        hourly = _hourly_events(con, window)
        evaluated = list(_evaluations(con, window, slos))
        compliance = (
            _compliance(pa.concat_tables([_hour_end_states(e, slo) for slo, e in evaluated]), hourly)
            if evaluated
            else COMPLIANCE_SCHEMA.empty_table()
        )
        breaches = (
            pa.concat_tables([_episodes(e, slo) for slo, e in evaluated])
            if evaluated
            else BREACHES_SCHEMA.empty_table()
        )
        yield publish(lake, COMPLIANCE, compliance, window, "hour", con=con, describe=_describe_compliance)
        # An episode's start is an evaluation time: the end of the step in which the condition first held.
        yield publish(lake, BREACHES, breaches, window, "start", con=con, closed="right", describe=_describe_breaches)
