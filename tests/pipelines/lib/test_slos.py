"""The SLO spec file as the pipelines read it: the packaged spec is valid, a bad file is named in one error."""

from __future__ import annotations

import pytest
import yaml

from models.slo.spec import EventsSli, LatencySli, SpecError
from pipelines.lib.slos import SLO_SPEC, load, load_health_policy, load_slos
from tests.models.slo.test_spec import VALID


def test_repository_spec_is_valid():
    slos = {slo.name: slo for slo in load()}
    assert len(slos) >= 4
    assert {type(s.sli) for s in slos.values()} == {LatencySli, EventsSli}
    assert {s.window for s in slos.values()} <= {"7d", "28d", "30d"}
    per_controller = slos["read-latency-per-controller"]
    assert (per_controller.objective, per_controller.sli.threshold_ns, per_controller.group_columns) == (
        99.5,
        1024,
        ("controller_id",),
    )


def test_load_reports_unreadable_and_malformed_files(tmp_path):
    with pytest.raises(SpecError, match="cannot read"):
        load_slos(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("slos: [\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_slos(broken)
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(VALID))
    assert load_slos(good)[0].name == "reads"


def test_the_health_policy_comes_from_the_spec_and_a_bad_one_is_named(tmp_path):
    policy = load_health_policy()
    assert policy.missed_failure_cost > policy.false_alarm_cost > 0  # a missed failure is a host crash
    assert load_slos(SLO_SPEC) == load()  # the health section is no SLO
    spec = yaml.safe_load(SLO_SPEC.read_text())
    for health, problem in (
        (None, "no 'health' section"),
        ({"alarm_costs": {"missed_failure": 10}}, "'false_alarm': is required"),
        ({"alarm_costs": {"missed_failure": 10, "false_alarm": 0}}, "costs must be positive"),
        ({"alarm_costs": {"missed_failure": "ten", "false_alarm": 1}}, "must be int or float"),
        ({"alarm_cost": {}}, "unknown field 'alarm_cost'"),
    ):
        path = tmp_path / "slos.yaml"
        path.write_text(
            yaml.safe_dump({**spec, "health": health} if health else {k: v for k, v in spec.items() if k != "health"})
        )
        with pytest.raises(SpecError, match=problem) as error:
            load_health_policy(path)
        assert str(path) in str(error.value) and "\n" not in str(error.value)
