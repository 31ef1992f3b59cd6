"""SLI event series from telemetry: latency histograms in Python, event rows through DuckDB."""

from __future__ import annotations

import duckdb
import numpy as np
import pytest

from models.rollup import with_inventory
from models.slo.burn import evaluate
from models.slo.sli import events_query, latency_series
from models.slo.spec import LatencySli, Slo
from pipelines.lib.slos import load
from tests.models import tables
from tests.models.latency_rows import latency_table, lognormal_samples, minute


def test_latency_series_counts_cxl_accesses_of_the_op_per_step():
    rng = np.random.default_rng(9)
    rows = []
    for c in ("0xa", "0xb"):
        for m in range(3):
            for op in ("read", "write"):
                x = lognormal_samples(rng, 500, median_ns=700, tail=0.3)
                rows.append({"samples": x, "controller_id": c, "op": op, "window_start": minute(m)})
    baseline = {"samples": np.full(50, 2000.0), "memory_tier": "local_dram", "controller_id": "0xa"}
    table = latency_table([*rows, baseline])
    inventory = tables.inventory({"controller_id": "0xa", "rack": "r1"}, {"controller_id": "0xb", "rack": "r1"})
    rack_slo = Slo(name="r", objective=99.0, window="7d", sli=LatencySli("read", 2048), group_by=("rack",))
    result = latency_series(with_inventory(table, inventory, ["rack"]), rack_slo, step_s=120)
    reads = [r for r in rows if r["op"] == "read"]
    by_step = {
        0: [r for r in reads if r["window_start"] < minute(2)],
        2: [r for r in reads if r["window_start"] >= minute(2)],
    }
    assert result["ts"].to_pylist() == [minute(0), minute(2)]
    for position, chosen in enumerate(by_step.values()):
        raw = np.concatenate([r["samples"] for r in chosen])
        assert result["total"][position].as_py() == raw.size
        assert result["good"][position].as_py() == int((raw <= 2048).sum())
    with pytest.raises(ValueError, match=r"has no column .rack.*with_inventory"):
        latency_series(table, rack_slo)


def test_events_slo_from_the_link_table_through_duckdb():
    (link_slo,) = [s for s in load() if s.name == "link-availability-per-rack"]
    down = {"ltssm_state": "Detect", "lnksta_flags": 0}
    link_rows = [
        {"controller_id": c, "ts": tables.at(60 * m), **(down if (c, m) in {("0xa", 3), ("0xa", 4)} else {})}
        for c in ("0xa", "0xb", "0xc")
        for m in range(10)
    ]
    link_rows.append({"controller_id": "0xa", "ts": tables.at(65), "event": "link_down"})  # not a snapshot
    inventory = tables.inventory(
        {"controller_id": "0xa", "rack": "r1"},
        {"controller_id": "0xb", "rack": "r1"},
        {"controller_id": "0xc", "rack": "r2"},
    )
    con = duckdb.connect()
    con.register("link", tables.link(*link_rows))
    con.register("inventory", inventory)
    result = con.sql(events_query(link_slo, "link", "inventory")).arrow().read_all()
    totals = {}
    for row in result.to_pylist():
        good, total = totals.get(row["rack"], (0, 0))
        totals[row["rack"]] = (good + row["good"], total + row["total"])
    assert totals == {"r1": (18, 20), "r2": (10, 10)}
    status = evaluate(result, link_slo).status.to_pylist()
    assert [r["rack"] for r in status] == ["r1", "r2"]
    assert status[0]["sli"] == pytest.approx(0.9)
