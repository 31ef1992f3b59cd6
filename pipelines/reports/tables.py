"""The report's tables as people read them: human column names with units, thousands separators, Yes/No, times in
UTC, budgets as percentages (an overspent one marked, never a negative fraction), reasons and evidence in words,
and "top N of M" whenever rows are left out. The CSV files keep the raw values.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC

import pyarrow as pa

from models.health import REASONS

Format = Callable[[object], str]
NONE = "–"
# Evidence codes of models/resets.py and models/link_events.py in words.
EVIDENCE_WORDS = {
    "row": "controller_reset record",
    "epoch": "counter epoch changed",
    "uptime": "uptime went back",
    "counter": "counters went back",
    "gap": "telemetry gap",
    "event": "link event",
    "state": "LTSSM state",
}
STATE_WORDS = {
    "page": "firing: page",
    "ticket": "firing: ticket",
    "ok": "ok",
    "insufficient_data": "ok (too few events to alert)",
    "absent": "no data",
}


def text(value: object) -> str:
    return NONE if value is None else str(value)


def count(value: object) -> str:
    return NONE if value is None else f"{value:,}"


def number(value: object) -> str:
    if value is None:
        return NONE
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def nanoseconds(value: object) -> str:
    return NONE if value is None else f"{value:,.0f} ns"


def percent(value: object) -> str:
    """A ratio (0..1) as a percentage with the precision an SLI needs (99.432 %)."""
    return NONE if value is None else f"{100 * value:.3f} %"


def objective(value: object) -> str:
    return NONE if value is None else f"{value:g} %"


def burn(value: object) -> str:
    return NONE if value is None else f"{value:,.2f}×"


def budget(remaining: object) -> str:
    """Budget remaining (a fraction, 1 = untouched) as a percentage; an overspent one says by how much."""
    if remaining is None:
        return NONE
    if remaining < 0:
        return f"0 %: over budget ({100 * (1 - remaining):,.0f} % spent)"
    return f"{100 * remaining:.1f} %"


def budget_pct(row: dict) -> str:
    """The overview's remaining percentage and spent percentage, the same way as `budget`."""
    if row["budget_spent_pct"] is None:
        return NONE
    return budget(1 - row["budget_spent_pct"] / 100)


def seconds(value: object) -> str:
    if value is None:
        return NONE
    if value < 120:
        return f"{value:.1f} s"
    return f"{value / 60:,.1f} min" if value < 7200 else f"{value / 3600:,.1f} h"


def hours(value: object) -> str:
    return NONE if value is None else f"{value:,.1f} h"


def moment(value: object) -> str:
    """Every time in the report: UTC, to the second."""
    return NONE if value is None else f"{value.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


def yes_no(value: object) -> str:
    return NONE if value is None else ("Yes" if value else "No")


def evidence(value: object) -> str:
    return NONE if not value else ", ".join(EVIDENCE_WORDS.get(code, code) for code in str(value).split(","))


def reasons(value: object) -> str:
    """Top health reasons in words (models.health.REASONS) with the points each took, the first with its why (the
    others' are in sre.fleet_health; a why per reason would push the next tables off the first two screens):
    'link errors (−41.7 points): correctable link error records in the last 1 h: 97 (healthiest in training 0);
    memory errors (−30.0 points)'."""
    if not value:
        return "no reason took points"
    shown = [f"{REASONS[r['reason']][0]} (−{r['points']:.1f} points)" for r in value]
    return "; ".join([f"{shown[0]}: {value[0]['why']}", *shown[1:]])


def state(value: object) -> str:
    return STATE_WORDS.get(str(value), text(value))


# Column name -> (header, format) for the tables read straight from a view; other columns by name and type.
NAMED: dict[str, tuple[str, Format]] = {
    "slo": ("SLO", text),
    "group_key": ("group", text),
    "controller_id": ("controller", text),
    "objective": ("objective", objective),
    "sli": ("SLI (good / all events)", percent),
    "burn_rate": ("burn rate (1× = on budget)", burn),
    "budget_remaining": ("budget remaining", budget),
    "health": ("health (0-100, 100 = healthy)", lambda v: NONE if v is None else f"{v:.0f}"),
    "mttr_s": ("mean recovery (MTTR)", seconds),
    "mttd_s": ("mean detection delay (MTTD)", seconds),
    "peak_score": ("peak score (0.5 = flag threshold)", number),
    "burn_1h": ("SLO burn 1 h", burn),
    "risk": ("risk", percent),
    "threshold": ("alarm threshold", percent),
    "state": ("alert state", state),
    "cxl_ns": ("CXL", nanoseconds),
    "local_dram_ns": ("local DRAM", nanoseconds),
    "cxl_to_dram": ("CXL ÷ local DRAM", lambda v: NONE if v is None else f"{v:.2f}×"),
    "top_reasons": ("why: health points lost (of 100)", reasons),
    "evidence": ("evidence", evidence),
    "rank": ("rank", count),
}
_SUFFIXES: dict[str, tuple[str, Format]] = {"_ns": ("", nanoseconds), "_s": ("", seconds), "_h": (" (h)", hours)}


def _by_type(name: str, data_type: pa.DataType) -> tuple[str, Format]:
    if name in NAMED:
        return NAMED[name]
    for suffix, (unit, format_) in _SUFFIXES.items():
        if name.endswith(suffix):
            return name.removesuffix(suffix).replace("_", " ") + unit, format_
    header = name.replace("_", " ")
    if pa.types.is_boolean(data_type):
        return header, yes_no
    if pa.types.is_integer(data_type):
        return header, count
    if pa.types.is_floating(data_type):
        return header, number
    if pa.types.is_timestamp(data_type):
        return header, moment
    return header, text


@dataclass(frozen=True)
class Column:
    header: str
    cell: Callable[[dict], str]  # the formatted cell of a row (a dict of the view's columns)


def column(header: str, format_: Format, name: str) -> Column:
    return Column(header, lambda row: format_(row[name]))


@dataclass(frozen=True)
class Shown:
    """A table ready to print: headers, formatted rows (the first `limit`), which rows are marked, and the total."""

    headers: list[str]
    rows: list[list[str]]
    marked: list[bool]
    total: int

    def caption(self, what: str) -> str:
        if self.total > len(self.rows):
            return f"{what}: top {len(self.rows):,} of {self.total:,}"
        return f"{what}: {self.total:,}" if self.total != 1 else f"{what}: 1"


def show(
    table: pa.Table,
    columns: Sequence[Column] | None = None,
    limit: int = 10,
    marked: Callable[[dict], bool] | None = None,
) -> Shown:
    """`table` (already sorted most severe first) as people read it: `columns` or every column by name and type;
    rows whose budget is overspent are marked unless `marked` says which."""
    if columns is None:
        columns = [column(*_by_type(field.name, field.type), field.name) for field in table.schema]
    rows = table.slice(0, limit).to_pylist()
    over = marked or (lambda row: (row.get("budget_remaining") or 0) < 0)
    return Shown(
        [c.header for c in columns],
        [[c.cell(row) for c in columns] for row in rows],
        [over(row) for row in rows],
        table.num_rows,
    )


def moment_or(missing: str) -> Format:
    """A time, or `missing` in words when there is none (e.g. 'still down')."""
    return lambda value: missing if value is None else moment(value)


def seconds_or(missing: str) -> Format:
    return lambda value: missing if value is None else seconds(value)
