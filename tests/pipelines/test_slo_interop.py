"""`leo-fleet slo export|import` through the real CLI: OpenSLO export then import gives back the packaged SLOs; an
SLO leo-fleet cannot evaluate is refused in one line with exit 2; Sloth gets one spec per period whose queries read
windows the exporter serves."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from models.slo.spec import BURN_WINDOWS, parse_slos
from pipelines.lib.metrics import PREFIX
from pipelines.lib.slos import load
from tests.ingest.kafka.helpers import CLI


def leo_fleet(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120, check=False)


def test_openslo_export_then_import_gives_the_same_slos(tmp_path: Path) -> None:
    exported, imported = tmp_path / "slos.openslo.yaml", tmp_path / "slos.yaml"
    assert leo_fleet("slo", "export", "--format", "openslo", "--out", str(exported)).returncode == 0
    documents = list(yaml.safe_load_all(exported.read_text()))
    assert [d["kind"] for d in documents] == ["Service"] + ["SLO"] * len(load())
    assert all(d["apiVersion"] == "openslo/v1" for d in documents)

    done = leo_fleet("slo", "import", str(exported), "--out", str(imported))

    assert done.returncode == 0, done.stderr
    assert parse_slos(yaml.safe_load(imported.read_text()), str(imported)) == load()


def test_an_slo_leo_fleet_cannot_evaluate_is_refused_in_one_line(tmp_path: Path) -> None:
    exported = tmp_path / "slos.openslo.yaml"
    leo_fleet("slo", "export", "--out", str(exported))
    documents = list(yaml.safe_load_all(exported.read_text()))
    documents[1]["spec"]["indicator"]["spec"]["ratioMetric"]["total"]["metricSource"]["type"] = "Prometheus"
    exported.write_text(yaml.safe_dump_all(documents))

    done = leo_fleet("slo", "import", str(exported))

    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1
    assert "'Prometheus' is not one leo-fleet evaluates" in done.stderr


def test_sloth_specs_one_per_period_over_the_exporters_burn_rates(tmp_path: Path) -> None:
    done = leo_fleet("slo", "export", "--format", "sloth", "--out", str(tmp_path))

    assert done.returncode == 0, done.stderr
    slos = {slo.name: slo for slo in load()}
    specs = {path.name: yaml.safe_load(path.read_text()) for path in tmp_path.glob("sloth-*.yaml")}
    assert set(specs) == {f"sloth-{slo.window}.yaml" for slo in slos.values()}
    exported = [(name, entry) for name, spec in specs.items() for entry in spec["slos"]]
    assert sorted(entry["name"] for _, entry in exported) == sorted(slos)
    for file_name, entry in exported:
        slo = slos[entry["name"]]
        assert file_name == f"sloth-{slo.window}.yaml" and entry["objective"] == slo.objective
        query = entry["sli"]["raw"]["error_ratio_query"]
        assert query.startswith(f'{PREFIX}_slo_burn_rate{{slo="{slo.name}",window="{{{{.window}}}}"}}')
        assert float(query.rsplit("*", 1)[1]) == pytest.approx(slo.error_budget, rel=1e-9)
        # Every window the SLO's alert tiers read is one the exporter serves a burn rate for.
        assert {w for tier in slo.tiers for w in (tier.long, tier.short)} <= set(BURN_WINDOWS)
        assert ("disable" in entry["alerting"]["page_alert"]) is not slo.page
        assert ("disable" in entry["alerting"]["ticket_alert"]) is not slo.ticket
