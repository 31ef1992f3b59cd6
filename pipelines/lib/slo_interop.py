"""The SLO spec in the formats other SLO tools read: OpenSLO (both ways) and Sloth (out).

OpenSLO v1 carries every SLO whole: objective, rolling window and description in its own fields, the SLI as a ratio
whose metric sources are of type `leo-fleet` (their spec is this project's SLI: a latency op and threshold, or an
event table with its total and bad predicates), and what OpenSLO has no field for (group_by, alert tiers, labels)
in `leo-fleet/...` annotations. `from_openslo` reads such documents back into a spec document that
`models.slo.spec.parse_slos` validates, so export then import gives the same SLOs.

Sloth computes burn rates from Prometheus: its SLI here is a raw error ratio over the `leo-fleet exporter`'s
`leo_fleet_slo_burn_rate` gauge (error ratio = burn rate x error budget), one series per SLO group. Sloth takes
one SLO period for a whole run (`--default-slo-period`), so `to_sloth` writes one document per period. The gauge
is as of the latest hour the marts hold: Sloth's short windows see each hour land at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from models.slo.spec import EventsSli, LatencySli, Slo, SpecError
from pipelines.lib.metrics import PREFIX

OPENSLO_VERSION = "openslo/v1"
SLOTH_VERSION = "prometheus/v1"
SOURCE_TYPE = "leo-fleet"  # the OpenSLO metric source whose spec is one of this project's SLIs
ANNOTATION = "leo-fleet/"  # prefix of the annotations that keep what OpenSLO has no field for


def to_openslo(slos: Iterable[Slo], service: str) -> list[dict[str, Any]]:
    """A Service document, then one SLO document per SLO."""
    documents: list[dict[str, Any]] = [
        {"apiVersion": OPENSLO_VERSION, "kind": "Service", "metadata": {"name": service}, "spec": {}}
    ]
    for slo in slos:
        annotations = {
            f"{ANNOTATION}group-by": ",".join(slo.group_by),
            f"{ANNOTATION}page": str(slo.page).lower(),
            f"{ANNOTATION}ticket": str(slo.ticket).lower(),
            f"{ANNOTATION}min-bad-events": f"{slo.min_bad_events:g}",
            f"{ANNOTATION}absent-after": slo.absent_after,
        }
        documents.append(
            {
                "apiVersion": OPENSLO_VERSION,
                "kind": "SLO",
                "metadata": {"name": slo.name, "labels": dict(slo.labels), "annotations": annotations},
                "spec": {
                    "description": slo.description,
                    "service": service,
                    "indicator": {"metadata": {"name": f"{slo.name}-sli"}, "spec": {"ratioMetric": _ratio(slo)}},
                    "timeWindow": [{"duration": slo.window, "isRolling": True}],
                    "budgetingMethod": "Occurrences",
                    "objectives": [{"displayName": slo.sli_text, "target": round(slo.objective / 100, 10)}],
                },
            }
        )
    return documents


def _ratio(slo: Slo) -> dict[str, Any]:
    sli = slo.sli
    if isinstance(sli, LatencySli):
        return {
            "counter": True,
            "good": _source({"latency": {"op": sli.op, "threshold_ns": sli.threshold_ns}, "count": "good"}),
            "total": _source({"latency": {"op": sli.op, "threshold_ns": sli.threshold_ns}, "count": "total"}),
        }
    return {
        "counter": True,
        "bad": _source({"events": _events(sli), "predicate": sli.bad}),
        "total": _source({"events": _events(sli), "predicate": sli.total}),
    }


def _events(sli: EventsSli) -> dict[str, str]:
    """A new mapping each time, so that YAML writes it out in full rather than as an anchor and alias."""
    return {"table": sli.table, "timestamp": sli.timestamp, "label": sli.label}


def _source(spec: dict[str, Any]) -> dict[str, Any]:
    return {"metricSource": {"type": SOURCE_TYPE, "spec": spec}}


def from_openslo(documents: Iterable[Any], source: str) -> dict[str, Any]:
    """A spec document (version 1) from OpenSLO documents: their SLOs, the service of the first; SpecError names
    the document and the field when an SLO is not one leo-fleet can evaluate."""
    slos, services = [], []
    for index, document in enumerate(documents):
        if not isinstance(document, Mapping) or document.get("kind") != "SLO":
            continue  # Services, DataSources, AlertPolicies: nothing for the spec
        where = f"{source}: document {index + 1} (SLO {_get(document, 'metadata', 'name')!r})"
        if document.get("apiVersion") != OPENSLO_VERSION:
            raise SpecError(f"{where}: apiVersion must be {OPENSLO_VERSION}, got {document.get('apiVersion')!r}")
        slos.append(_slo_entry(document, where))
        services.append(_get(document, "spec", "service"))
    if not slos:
        raise SpecError(f"{source}: no OpenSLO document of kind SLO")
    return {"version": 1, "service": services[0] or "leo-fleet", "slos": slos}


def _slo_entry(document: Mapping[str, Any], where: str) -> dict[str, Any]:
    spec = _get(document, "spec") or {}
    windows = spec.get("timeWindow") or []
    if len(windows) != 1 or not windows[0].get("isRolling"):
        raise SpecError(f"{where}: field 'timeWindow' must be one rolling window (7d, 28d or 30d)")
    objectives = spec.get("objectives") or []
    if len(objectives) != 1 or not isinstance(objectives[0].get("target"), int | float):
        raise SpecError(f"{where}: field 'objectives' must be one objective with a target ratio")
    if spec.get("budgetingMethod", "Occurrences") != "Occurrences":
        raise SpecError(f"{where}: field 'budgetingMethod' must be Occurrences (good/total events)")
    annotations = _get(document, "metadata", "annotations") or {}
    group_by = annotations.get(f"{ANNOTATION}group-by", "")
    alerting = {
        "page": annotations.get(f"{ANNOTATION}page", "true") == "true",
        "ticket": annotations.get(f"{ANNOTATION}ticket", "true") == "true",
        "min_bad_events": float(annotations.get(f"{ANNOTATION}min-bad-events", "3")),
        "absent_after": annotations.get(f"{ANNOTATION}absent-after", "10m"),
    }
    return {
        "name": _get(document, "metadata", "name"),
        "description": spec.get("description", ""),
        "objective": round(objectives[0]["target"] * 100, 8),
        "window": windows[0].get("duration"),
        "group_by": [dimension for dimension in group_by.split(",") if dimension],
        "sli": _sli_entry(_get(spec, "indicator", "spec", "ratioMetric"), where),
        "alerting": alerting,
        "labels": dict(_get(document, "metadata", "labels") or {}),
    }


def _sli_entry(ratio: Any, where: str) -> dict[str, Any]:
    if not isinstance(ratio, Mapping):
        raise SpecError(f"{where}: field 'indicator': an inline indicator with a ratioMetric is required")
    sources = {}
    for part in ("good", "bad", "total"):
        if part in ratio:
            metric = _get(ratio, part, "metricSource") or {}
            if metric.get("type") != SOURCE_TYPE:
                raise SpecError(
                    f"{where}: field 'indicator.{part}': metric source {metric.get('type')!r} is not one leo-fleet "
                    f"evaluates (type {SOURCE_TYPE!r}: a latency or an events SLI)"
                )
            sources[part] = metric.get("spec") or {}
    total = sources.get("total", {})
    if "latency" in total and "good" in sources:
        return {"latency": dict(total["latency"])}
    if "events" in total and "bad" in sources:
        return {"events": {**total["events"], "total": total.get("predicate"), "bad": sources["bad"].get("predicate")}}
    raise SpecError(f"{where}: field 'indicator': needs total with good (latency) or total with bad (events)")


def _get(value: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def to_sloth(slos: Iterable[Slo], service: str) -> dict[str, dict[str, Any]]:
    """One Sloth spec per SLO period, keyed by the period (run Sloth on each with `--default-slo-period`)."""
    by_period: dict[str, dict[str, Any]] = {}
    for slo in slos:
        document = by_period.setdefault(slo.window, {"version": SLOTH_VERSION, "service": service, "slos": []})
        document["slos"].append(
            {
                "name": slo.name,
                "objective": slo.objective,
                "description": slo.description,
                "labels": dict(slo.labels),
                "sli": {"raw": {"error_ratio_query": sloth_error_ratio_query(slo)}},
                "alerting": {
                    "name": "LeoFleet" + "".join(word.capitalize() for word in slo.name.split("-")),
                    "labels": {"slo": slo.name},
                    "annotations": {"summary": f"{slo.name}: {slo.sli_text} below {slo.objective:g}%"},
                    "page_alert": {"labels": {"severity": "page"}} if slo.page else {"disable": True},
                    "ticket_alert": {"labels": {"severity": "ticket"}} if slo.ticket else {"disable": True},
                },
            }
        )
    return by_period


def sloth_error_ratio_query(slo: Slo) -> str:
    """PromQL for the SLO's error ratio over Sloth's `{{.window}}`, per SLO group, from the exporter's gauge."""
    return f'{PREFIX}_slo_burn_rate{{slo="{slo.name}",window="{{{{.window}}}}"}} * {slo.error_budget:.10g}'
