"""The delivery faults' plan and how it applies to outgoing tables (ingest/kafka/delivery_faults.py): seeded, at
the profile's rates, every row delivered (late ones later), re-sent rows once more, one truth row per controller."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from ingest import contract
from ingest.kafka.delivery_faults import DUPLICATE, LATE, Delivery, DeliveryFaults, HeldBatch, plan, truth
from ingest.kafka.publish import delivery_plan
from ingest.sim.config import SimConfig
from ingest.sim.simulator import Simulation

START = SimConfig.start
HOSTS = [f"host-{i:04d}" for i in range(2000)]
DAY_S = 86_400.0


def at(**delta: float) -> datetime:
    return START + timedelta(**delta)


def test_the_plan_is_seeded_and_off_plans_nothing() -> None:
    faults = DeliveryFaults.profile("default")
    assert plan(faults, HOSTS, START, DAY_S, seed=3) == plan(faults, HOSTS, START, DAY_S, seed=3)
    assert plan(faults, HOSTS, START, DAY_S, seed=3) != plan(faults, HOSTS, START, DAY_S, seed=4)
    assert plan(DeliveryFaults.profile("off"), HOSTS, START, DAY_S, seed=3) == []
    with pytest.raises(ValueError, match="one of off, default, heavy"):
        DeliveryFaults.profile("sometimes")  # type: ignore[arg-type]


@pytest.mark.parametrize("profile", ["default", "heavy"])
def test_batches_come_at_the_profile_rates_within_the_span_and_delays(profile: str) -> None:
    faults = DeliveryFaults.profile(profile)  # type: ignore[arg-type]
    days = 5.0
    batches = plan(faults, HOSTS, START, days * DAY_S, seed=1)
    for kind, rate in ((LATE, faults.late_per_host_day), (DUPLICATE, faults.duplicate_per_host_day)):
        mine = [batch for batch in batches if batch.kind == kind]
        expected = rate * len(HOSTS) * days
        # Poisson counts: within 4 standard deviations (a period drawn twice for one host is planned once).
        assert abs(len(mine) - expected) < 4 * expected**0.5, (kind, len(mine), expected)
    for batch in batches:
        assert START <= batch.start < batch.end <= START + timedelta(days=days)
        assert (batch.end - batch.start).total_seconds() == faults.batch_s
        assert (batch.start - START).total_seconds() % faults.batch_s == 0
        delay = (batch.release - batch.end).total_seconds()
        if batch.kind == LATE:
            assert faults.late_delay_s[0] <= delay <= faults.late_delay_s[1]
        else:
            assert delay == faults.resend_after_s
    assert [b.release for b in batches] == sorted(b.release for b in batches)


def _latency(hosts: list[str], minutes: int) -> pa.Table:
    times = [START + timedelta(minutes=m) for m in range(minutes)]
    return pa.table(
        {
            "window_start": pa.array([t for t in times for _ in hosts], pa.timestamp("ns", tz="UTC")),
            "host": pa.array([h for _ in times for h in hosts]).dictionary_encode(),
            "n": pa.array(range(len(times) * len(hosts))),
        }
    )


def test_late_rows_leave_later_and_resent_rows_leave_twice() -> None:
    topic = contract.TOPIC_LATENCY
    table = _latency(["a", "b"], 60)
    late = HeldBatch(LATE, "a", at(minutes=10), at(minutes=15), at(minutes=45))
    resent = HeldBatch(DUPLICATE, "b", at(minutes=20), at(minutes=25), at(minutes=25, seconds=30))
    delivery = Delivery([resent, late])
    first_half = delivery.split(topic, table.slice(0, 60))  # minutes 0-29 of both hosts
    assert first_half.num_rows == 55  # host a's minutes 10-14 held back
    # By minute 30 the re-sent batch went out again (host b's minutes 20-24); the late one is still held.
    again = [t for _, t in delivery.due(at(minutes=30))]
    assert [t.num_rows for t in again] == [5]
    assert pc.all(pc.equal(again[0].column("host").cast(pa.string()), "b")).as_py()
    sent = [first_half, *again]
    sent.append(delivery.split(topic, table.slice(60)))
    assert [t.num_rows for _, t in delivery.due(at(minutes=40))] == []
    released = [t for _, t in delivery.due(at(minutes=45))]
    assert [t.num_rows for t in released] == [5]
    assert pc.all(pc.equal(released[0].column("host").cast(pa.string()), "a")).as_py()
    everything = pa.concat_tables([*sent, *released]).column("n").to_pylist()
    copies = [n for n in set(everything) if everything.count(n) > 1]
    assert sorted(set(everything)) == list(range(table.num_rows))  # every row delivered
    assert len(copies) == 5  # the re-sent batch's rows, once more
    assert list(delivery.due(None)) == []


def test_whatever_is_held_at_the_end_goes_out_last() -> None:
    topic = contract.TOPIC_LATENCY
    delivery = Delivery([HeldBatch(LATE, "a", at(minutes=50), at(minutes=55), at(hours=5))])
    on_time = delivery.split(topic, _latency(["a"], 60))
    assert on_time.num_rows == 55
    assert [t.num_rows for _, t in delivery.due(None)] == [5]


def test_truth_has_a_row_per_controller_of_the_host() -> None:
    simulation = Simulation(SimConfig(controllers=12, hours=1, seed=5))
    batches = delivery_plan(simulation, DeliveryFaults(late_per_host_day=200.0, duplicate_per_host_day=100.0))
    rows = truth(batches, simulation.inventory)
    assert rows.schema.equals(contract.TRUTH_FAULTS_SCHEMA)
    hosts = dict(
        zip(
            simulation.inventory.column("controller_id").to_pylist(),
            simulation.inventory.column("host").to_pylist(),
            strict=True,
        )
    )
    per_host = pc.value_counts(simulation.inventory.column("host").cast(pa.string())).to_pylist()
    controllers = {entry["values"]: entry["counts"] for entry in per_host}
    assert rows.num_rows == sum(controllers[batch.host] for batch in batches) > 0
    assert set(rows.column("kind").cast(pa.string()).to_pylist()) == {LATE, DUPLICATE}
    for row in rows.to_pylist():
        details = json.loads(row["details"])
        assert hosts[row["controller_id"]] == details["host"]
        assert row["precursor_onset_ts"] is None and row["end_ts"] > row["onset_ts"]
