"""The SLO spec file as the pipelines read it: the packaged spec is valid, a bad file is named in one error."""

from __future__ import annotations

import pytest
import yaml

from models.slo.spec import EventsSli, LatencySli, SpecError
from pipelines.lib.slos import load, load_slos
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
