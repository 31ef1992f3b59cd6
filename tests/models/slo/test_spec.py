"""SLO spec validation: every problem names the SLO and the field."""

from __future__ import annotations

import copy

import pytest

from models.slo.spec import BURN_WINDOWS, SpecError, parse_slos

VALID = {
    "version": 1,
    "service": "leo-fleet",
    "slos": [
        {
            "name": "reads",
            "objective": 99.9,
            "window": "30d",
            "group_by": ["rack"],
            "sli": {"latency": {"op": "read", "threshold_ns": 1024}},
            "alerting": {"page": True},
        }
    ],
}


def test_valid_document_parses():
    (slo,) = parse_slos(VALID)
    assert slo.error_budget == pytest.approx(0.001)
    assert [t.factor for t in slo.tiers] == [14.4, 6.0, 3.0, 1.0]


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("objective",), 100, "SLO 'reads': field 'objective': must be a percentage strictly between 0 and 100"),
        (("objective",), "99.9", "field 'objective': must be int or float"),
        (("objective",), True, "field 'objective': must be int or float"),
        (("window",), "14d", "SLO 'reads': field 'window': must be one of 7d, 28d, 30d"),
        (("group_by",), ["datacenter"], "field 'group_by': unknown dimension 'datacenter'"),
        (("group_by",), ["rack", "rack"], "lists a dimension twice"),
        (("objectve",), 99.9, "SLO 'reads': unknown field 'objectve'"),
        (("sli", "latency", "threshold_ns"), 1000, "sli.latency: field 'threshold_ns': must be a power of two"),
        (("sli", "latency", "op"), "copy", "field 'op': must be one of read, write"),
        (("sli", "events"), {"table": "link", "total": "true", "bad": "false"}, "give exactly one of"),
        (("alerting", "absent_after"), "ten minutes", "field 'absent_after': not a duration"),
        (("alerting", "min_bad_events"), 0, "field 'min_bad_events': must be positive"),
        (("name",), "Reads!", "field 'name': must be lower-case"),
    ],
)
def test_invalid_specs_name_the_slo_and_the_field(path, value, message):
    document = copy.deepcopy(VALID)
    target = document["slos"][0]
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(SpecError, match=message.replace("(", r"\(")):
        parse_slos(document, "slos.yaml")


def test_spec_level_problems():
    twice = copy.deepcopy(VALID)
    twice["slos"].append(copy.deepcopy(VALID["slos"][0]))
    with pytest.raises(SpecError, match="'reads' is used twice"):
        parse_slos(twice)
    with pytest.raises(SpecError, match="field 'sli': is required"):
        parse_slos({**VALID, "slos": [{"name": "x", "objective": 99, "window": "7d"}]})
    with pytest.raises(SpecError, match="field 'version': only version 1"):
        parse_slos({**VALID, "version": 2})
    events = copy.deepcopy(VALID)
    events["slos"][0]["sli"] = {"events": {"table": "link", "total": "true", "bad": "x; DROP TABLE y"}}
    with pytest.raises(SpecError, match="field 'bad': must be one non-empty SQL boolean expression"):
        parse_slos(events)


def test_window_defaults_to_a_rolling_28_days_and_every_tier_window_is_a_burn_window():
    document = copy.deepcopy(VALID)
    del document["slos"][0]["window"]
    (slo,) = parse_slos(document)
    assert slo.window == "28d" and slo.period_text == "rolling 28 days"
    assert [t.factor for t in slo.tiers] == [14.0, 7.0, 2.0, 1.0]
    for period in ("7d", "28d", "30d"):
        document["slos"][0]["window"] = period
        (slo,) = parse_slos(document)
        assert {w for t in slo.tiers for w in (t.long, t.short)} <= set(BURN_WINDOWS)


def test_the_sli_reads_in_words():
    (slo,) = parse_slos(VALID)
    assert slo.sli_text == "CXL reads within 1,024 ns"
    events = copy.deepcopy(VALID)
    events["slos"][0]["sli"] = {"events": {"table": "link", "total": "true", "bad": "false", "label": "links up"}}
    assert parse_slos(events)[0].sli_text == "links up"
    del events["slos"][0]["sli"]["events"]["label"]
    assert parse_slos(events)[0].sli_text == "good link events"
