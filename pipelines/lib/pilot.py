"""pilot.yaml, the pilot's price scenarios and bootstrap settings: read and validated into models.pilot.PilotSpec."""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

from models.pilot import PilotSpec, PriceScenario
from models.slo.spec import SpecFields
from pipelines.lib.slos import read_spec_document  # the one reader of YAML spec files

PILOT_SPEC = files("pipelines.lib") / "pilot.yaml"
_SCENARIO_FIELDS = ("name", "instance_per_hour", "cxl_premium", "cxl_overhead_per_hour", "rollback")
_NUMBER = (int, float)


def load_pilot_spec(path: Path | Traversable = PILOT_SPEC) -> PilotSpec:
    """SpecError names the file and the field on anything malformed."""
    top = SpecFields(read_spec_document(path), str(path), ("version", "bootstrap", "scenarios"))
    if top.get("version", int) != 1:
        raise top.error("version", "only version 1 is known")
    boot = SpecFields(top.get("bootstrap", dict), f"{path}: bootstrap", ("resamples", "confidence", "seed"))
    resamples, confidence = boot.get("resamples", int), float(boot.get("confidence", _NUMBER))
    if resamples < 100 or not 0.5 <= confidence < 1:
        raise boot.error("resamples", "needs at least 100 resamples and a confidence in [0.5, 1)")
    scenarios = []
    for index, entry in enumerate(top.get("scenarios", list)):
        fields = SpecFields(entry, f"{path}: scenarios[{index}]", _SCENARIO_FIELDS)
        scenario = PriceScenario(
            name=fields.get("name", str),
            instance_per_hour=float(fields.get("instance_per_hour", _NUMBER)),
            cxl_premium=float(fields.get("cxl_premium", _NUMBER)),
            cxl_overhead_per_hour=float(fields.get("cxl_overhead_per_hour", _NUMBER, 0.0)),
            rollback=fields.get("rollback", bool, False),
        )
        if scenario.instance_per_hour <= 0 or scenario.cxl_premium < 0 or scenario.cxl_overhead_per_hour < 0:
            raise fields.error("instance_per_hour", "prices must be positive, premium and overhead not negative")
        scenarios.append(scenario)
    if not scenarios or len({s.name for s in scenarios}) < len(scenarios):
        raise top.error("scenarios", "needs at least one scenario, each with its own name")
    return PilotSpec(resamples, confidence, boot.get("seed", int), tuple(scenarios))
