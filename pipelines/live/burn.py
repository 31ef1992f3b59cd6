"""Fast-burn pages of the latency SLOs, live: the SLO assets' SLI series and burn evaluation over the carried
latency rows, so a page fires within minutes of the 5-minute window crossing the factor instead of after the hour.

Only the page tier with the shortest long window (1h/5m in every period's table) is evaluated live: the others'
long windows (6 h and more) exceed what the live path carries, and the hourly marts page on them. Steps are
evaluated once complete (`models.slo.burn.evaluate` until the last whole step), so a step still filling never
opens or closes a page.
"""

from __future__ import annotations

from datetime import timedelta

import pyarrow as pa
import pyarrow.compute as pc

from ingest.contract import TS
from models.incidents import INCIDENT_SCHEMA, incident_id
from models.series import NS_PER_S, timestamps_ns
from models.slo.burn import evaluate
from models.slo.spec import AlertTier, LatencySli, Slo, duration_s
from pipelines.lib.slos import STEP_S, keyed, latency_sli

SLO_PAGE = "slo_page"


def fast_tier(slo: Slo) -> AlertTier | None:
    """The page tier with the shortest long window: what the live path evaluates."""
    pages = [tier for tier in slo.tiers if tier.severity == "page"]
    return min(pages, key=lambda tier: duration_s(tier.long)) if pages else None


def live_slos(slos: tuple[Slo, ...], carried: timedelta) -> list[tuple[Slo, AlertTier]]:
    """Latency SLOs with a page tier whose long window fits in `carried` data time."""
    chosen = []
    for slo in slos:
        tier = fast_tier(slo)
        if isinstance(slo.sli, LatencySli) and tier and duration_s(tier.long) <= carried.total_seconds():
            chosen.append((slo, tier))
    return chosen


def fast_burn_pages(
    latency: pa.Table, inventory: pa.Table, slos: list[tuple[Slo, AlertTier]], until_ns: int
) -> pa.Table:
    """Page episodes of each SLO's fast tier over `latency` up to the step boundary at or before `until_ns`, as
    incidents (`page_incidents`)."""
    step_ns = STEP_S * NS_PER_S
    until = until_ns // step_ns * step_ns
    rows = latency.filter(pa.array(timestamps_ns(latency["window_start"]) < until))
    parts = [INCIDENT_SCHEMA.empty_table()]
    for slo, tier in slos if rows.num_rows else ():
        series = latency_sli(slo, rows, inventory)
        if series.num_rows:
            episodes = keyed(evaluate(series, slo, STEP_S, until=pa.scalar(until, TS)).episodes, slo)
            parts.append(page_incidents(episodes, {slo.name: tier}))
    return pa.concat_tables(parts)


def page_incidents(episodes: pa.Table, tiers: dict[str, AlertTier]) -> pa.Table:
    """The page episodes of each SLO's tier in `tiers` among `episodes` (keyed: slo, group_key, kind, tier, start,
    end, peak_burn: marts.slo_breaches' layout) in models.incidents.INCIDENT_SCHEMA: subject slo/group, start =
    detected = the evaluation time the page began, end null while it lasts."""
    fast = pa.array([f"{name}|{tier.name}" for name, tier in tiers.items()], pa.string())
    which = pc.binary_join_element_wise(episodes["slo"], episodes["tier"], "|")
    mine = episodes.filter(pc.and_(pc.equal(episodes["kind"], "page"), pc.is_in(which, fast)))
    subjects = [
        f"{slo}/{group}" for slo, group in zip(mine["slo"].to_pylist(), mine["group_key"].to_pylist(), strict=True)
    ]
    starts = timestamps_ns(mine["start"].cast(TS))
    return pa.table(
        {
            "incident_id": [incident_id(SLO_PAGE, s, int(t)) for s, t in zip(subjects, starts, strict=True)],
            "kind": [SLO_PAGE] * mine.num_rows,
            "subject": subjects,
            "start_ts": mine["start"].cast(TS),
            "detected_ts": mine["start"].cast(TS),
            "end_ts": mine["end"].cast(TS),
            "evidence": [
                f"{t} burn, peak {p:.1f}x"
                for t, p in zip(mine["tier"].to_pylist(), mine["peak_burn"].to_pylist(), strict=True)
            ],
        },
        schema=INCIDENT_SCHEMA,
    )
