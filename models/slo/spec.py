"""The SLO spec: what an SLO promises (objective, rolling period, SLI, grouping, alerting) and its validation.

A spec document (version 1, parsed from YAML by the caller) becomes frozen `Slo` values, or a SpecError naming the
source, the SLO and the field. The alert tiers of each period are part of the spec: the SRE Workbook tables as
encoded by Sloth for 30d/7d and Pyrra for 28d (`Slo.tiers`); models.slo.burn evaluates them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ingest.contract import LATENCY_OPS

_UNIT_S = {"m": 60, "h": 3600, "d": 86400}
PERIODS = ("7d", "28d", "30d")
DEFAULT_PERIOD = "28d"  # an SLO without `window` is budgeted over a rolling 28 days (four whole weeks)
# Every window an alert tier of any period uses (ALERT_TIERS), so the marts hold both burns of every tier.
BURN_WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d", "4d")
# Spec dimension -> column of the telemetry (controller, host) or of the joined inventory (rack, region, firmware).
DIMENSIONS = {
    "controller": "controller_id",
    "host": "host",
    "rack": "rack",
    "region": "region",
    "firmware": "firmware_version",
}
EVENT_TABLES = ("errors", "link")
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")


def duration_s(text: str) -> int:
    """'5m' → 300, '1h' → 3600, '3d' → 259200."""
    match = re.fullmatch(r"([1-9][0-9]*)([mhd])", str(text))
    if not match:
        raise ValueError(f"not a duration like 5m, 6h or 28d: {text!r}")
    return int(match[1]) * _UNIT_S[match[2]]


def period_text(window: str) -> str:
    """'28d' → 'rolling 28 days': how an SLO's budget period reads."""
    return f"rolling {duration_s(window) // 86400} days"


@dataclass(frozen=True)
class AlertTier:
    severity: str
    long: str
    short: str
    factor: float

    @property
    def name(self) -> str:
        return f"{self.long}/{self.short}"


# Budget share each tier spends before firing, in the sources' own terms: factor = share · period / long window.
ALERT_TIERS: dict[str, tuple[AlertTier, ...]] = {
    # slok/sloth internal/alert/windows/google-30d.yaml: 2%, 5%, 10%, 10% of the budget.
    "30d": (
        AlertTier("page", "1h", "5m", 14.4),
        AlertTier("page", "6h", "30m", 6.0),
        AlertTier("ticket", "1d", "2h", 3.0),
        AlertTier("ticket", "3d", "6h", 1.0),
    ),
    # pyrra-dev/pyrra slo/rules.go: windows scaled to the period, factors 14/7/2/1.
    "28d": (
        AlertTier("page", "1h", "5m", 14.0),
        AlertTier("page", "6h", "30m", 7.0),
        AlertTier("ticket", "1d", "2h", 2.0),
        AlertTier("ticket", "4d", "6h", 1.0),
    ),
    # slok/sloth examples/windows/7d.yaml: 8%, 12.5%, 20%, 42% of the budget.
    "7d": (
        AlertTier("page", "1h", "5m", 13.44),
        AlertTier("page", "6h", "30m", 3.5),
        AlertTier("ticket", "1d", "2h", 1.4),
        AlertTier("ticket", "3d", "6h", 0.98),
    ),
}


@dataclass(frozen=True)
class LatencySli:
    """Good = CXL accesses of `op` at or below `threshold_ns` (exact counters or bucket boundaries)."""

    op: str
    threshold_ns: int


@dataclass(frozen=True)
class EventsSli:
    """Ratio SLI over rows of a raw table: `total` selects valid events, `bad` the failed ones (DuckDB SQL)."""

    table: str
    total: str
    bad: str
    timestamp: str = "ts"
    label: str = ""  # what a good event is, in words, for the report and the overview


@dataclass(frozen=True)
class Slo:
    name: str
    objective: float  # percent, e.g. 99.9
    window: str
    sli: LatencySli | EventsSli
    group_by: tuple[str, ...] = ()
    description: str = ""
    page: bool = True
    ticket: bool = True
    min_bad_events: float = 3.0
    absent_after: str = "10m"
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def sli_text(self) -> str:
        """What the SLI counts as good, in words with units: the overview's SLI column."""
        if isinstance(self.sli, LatencySli):
            return f"CXL {self.sli.op}s within {self.sli.threshold_ns:,} ns"
        return self.sli.label or f"good {self.sli.table} events"

    @property
    def period_text(self) -> str:
        return period_text(self.window)

    @property
    def error_budget(self) -> float:
        return (100.0 - self.objective) / 100.0

    @property
    def period_s(self) -> int:
        return duration_s(self.window)

    @property
    def group_columns(self) -> tuple[str, ...]:
        return tuple(DIMENSIONS[d] for d in self.group_by)

    @property
    def tiers(self) -> tuple[AlertTier, ...]:
        enabled = {"page": self.page, "ticket": self.ticket}
        return tuple(t for t in ALERT_TIERS[self.window] if enabled[t.severity])

    @property
    def windows(self) -> tuple[str, ...]:
        """The standard burn windows plus every window a tier of this period uses, shortest first."""
        names = {*BURN_WINDOWS, *(w for t in ALERT_TIERS[self.window] for w in (t.long, t.short))}
        return tuple(sorted(names, key=duration_s))

    def min_events(self, tier: AlertTier) -> float:
        """Events the long window needs before `tier` may fire: k bad events alone must not reach the factor."""
        return self.min_bad_events / (tier.factor * self.error_budget)


class SpecError(ValueError):
    """The SLO spec is invalid; the message names the file, the SLO and the field."""


_REQUIRED = object()


class SpecFields:
    """Typed access to one mapping of the spec, rejecting unknown keys so that typos are caught."""

    def __init__(self, value: object, where: str, allowed: tuple[str, ...]):
        if not isinstance(value, Mapping):
            raise SpecError(f"{where}: must be a mapping, got {type(value).__name__}")
        unknown = sorted(set(map(str, value)) - set(allowed))
        if unknown:
            raise SpecError(f"{where}: unknown field {unknown[0]!r} (allowed: {', '.join(allowed)})")
        self.value, self.where = value, where

    def error(self, name: str, problem: str) -> SpecError:
        return SpecError(f"{self.where}: field '{name}': {problem}")

    def get(self, name: str, kinds: type | tuple[type, ...], default: Any = _REQUIRED) -> Any:
        if name not in self.value:
            if default is _REQUIRED:
                raise self.error(name, "is required")
            return default
        value = self.value[name]
        kinds = kinds if isinstance(kinds, tuple) else (kinds,)
        if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
            expected = " or ".join(k.__name__ for k in kinds)
            raise self.error(name, f"must be {expected}, got {value!r}")
        return value

    def choice(self, name: str, choices: tuple[str, ...], default: Any = _REQUIRED) -> str:
        value = self.get(name, str, default)
        if value not in choices:
            raise self.error(name, f"must be one of {', '.join(choices)}, got {value!r}")
        return value

    def duration(self, name: str, default: str) -> str:
        value = self.get(name, str, default)
        try:
            duration_s(value)
        except ValueError as exc:
            raise self.error(name, str(exc)) from None
        return value


def _parse_sli(value: object, where: str) -> LatencySli | EventsSli:
    fields = SpecFields(value, where, ("latency", "events"))
    if len(fields.value) != 1:
        raise SpecError(f"{where}: give exactly one of 'latency' or 'events'")
    if "latency" in fields.value:
        latency = SpecFields(fields.value["latency"], f"{where}.latency", ("op", "threshold_ns"))
        threshold = latency.get("threshold_ns", int)
        if threshold < 1 or threshold & (threshold - 1):
            raise latency.error(
                "threshold_ns",
                f"must be a power of two (an exact histogram bucket boundary, like 512, 1024, 2048), got {threshold}",
            )
        return LatencySli(latency.choice("op", LATENCY_OPS), threshold)
    events = SpecFields(fields.value["events"], f"{where}.events", ("table", "total", "bad", "timestamp", "label"))
    predicates = {name: events.get(name, str).strip() for name in ("total", "bad")}
    for name, text in predicates.items():
        if not text or ";" in text:
            raise events.error(name, "must be one non-empty SQL boolean expression")
    return EventsSli(
        events.choice("table", EVENT_TABLES),
        **predicates,
        timestamp=events.get("timestamp", str, "ts"),
        label=events.get("label", str, ""),
    )


def _parse_slo(value: object, source: str, index: int) -> Slo:
    allowed = ("name", "description", "objective", "window", "group_by", "sli", "alerting", "labels")
    named = isinstance(value, Mapping) and isinstance(value.get("name"), str)
    fields = SpecFields(value, f"{source}: SLO {value['name']!r}" if named else f"{source}: slos[{index}]", allowed)
    name = fields.get("name", str)
    if not _NAME.match(name):
        raise fields.error("name", f"must be lower-case letters, digits and dashes, got {name!r}")
    objective = fields.get("objective", (int, float))
    if not 0 < objective < 100 or not math.isfinite(objective):
        raise fields.error("objective", f"must be a percentage strictly between 0 and 100, got {objective}")
    group_by = fields.get("group_by", list, [])
    for dimension in group_by:
        if dimension not in DIMENSIONS:
            raise fields.error("group_by", f"unknown dimension {dimension!r} (allowed: {', '.join(DIMENSIONS)})")
    if len(set(group_by)) != len(group_by):
        raise fields.error("group_by", f"lists a dimension twice: {group_by}")
    alerting = SpecFields(
        fields.get("alerting", Mapping, {}),
        f"{fields.where}: alerting",
        ("page", "ticket", "min_bad_events", "absent_after"),
    )
    min_bad = alerting.get("min_bad_events", (int, float), 3)
    if not min_bad > 0:
        raise alerting.error("min_bad_events", f"must be positive, got {min_bad}")
    labels = fields.get("labels", Mapping, {})
    return Slo(
        name=name,
        objective=float(objective),
        window=fields.choice("window", PERIODS, DEFAULT_PERIOD),
        sli=_parse_sli(fields.get("sli", Mapping), f"{fields.where}: sli"),
        group_by=tuple(group_by),
        description=fields.get("description", str, ""),
        page=alerting.get("page", bool, True),
        ticket=alerting.get("ticket", bool, True),
        min_bad_events=float(min_bad),
        absent_after=alerting.duration("absent_after", "10m"),
        labels={str(k): str(v) for k, v in labels.items()},
    )


def parse_slos(document: object, source: str = "SLO spec") -> tuple[Slo, ...]:
    """Validate a parsed spec document; SpecError names the source, the SLO and the field on any problem."""
    top = SpecFields(document, source, ("version", "service", "slos"))
    if top.get("version", int) != 1:
        raise top.error("version", "only version 1 is known")
    top.get("service", str)
    entries = top.get("slos", list)
    if not entries:
        raise top.error("slos", "lists no SLO")
    slos = tuple(_parse_slo(entry, source, i) for i, entry in enumerate(entries))
    seen: set[str] = set()
    for slo in slos:
        if slo.name in seen:
            raise SpecError(f"{source}: SLO name {slo.name!r} is used twice")
        seen.add(slo.name)
    return slos
