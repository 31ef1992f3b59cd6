"""examples/latency_probe/probe.py, run as an operator runs it: its window lands in raw.latency through the real
broker and loader with a histogram the lake's blocking check accepts, in the contract's buckets."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from types import ModuleType

import pytest

from ingest import contract
from ingest.kafka import codec
from ingest.kafka.broker import free_port
from ingest.lake import connect
from pipelines.lib.partitions import Window
from pipelines.lib.quality import histogram_consistency
from tests.ingest.collect.fixtures import CONTROLLER_ID
from tests.ingest.kafka.helpers import lake_rows, run_loader
from tests.sample_lake import REPO

PROBE = REPO / "examples" / "latency_probe" / "probe.py"


def _probe_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("latency_probe", PROBE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run_probe(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(PROBE), *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_the_probe_speaks_the_contract():
    """The example repeats the contract's facts (it must not need leo-fleet installed); they must not drift."""
    probe = _probe_module()
    values = [*range(1, 5000), 1024, 1023.5, 2.0**20, 4e9]

    assert [probe.bucket_index(v) for v in values] == [contract.bucket_index(v) for v in values]
    assert (probe.SCALE, probe.SLO_THRESHOLD_NS) == (contract.HISTOGRAM_SCALE, contract.DEFAULT_SLO_THRESHOLD_NS)
    assert probe.TOPIC == contract.TOPIC_LATENCY
    expected = codec.message_headers(contract.LATENCY_SCHEMA, contract.CONTENT_TYPE_JSONL)
    assert sorted(probe.HEADERS) == sorted(expected)


@pytest.mark.kafka
def test_a_probe_window_lands_in_the_lake_with_a_consistent_histogram(settings):
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers}
    args = ("--tier", "cxl", "--controller-id", CONTROLLER_ID, "--host", "probe-host", "--windows", "1")
    before = datetime.now(UTC)
    # A short window against local DRAM: 16 MiB, past the 4 MiB L2 of the reference machine.
    probed = _run_probe(*args, "--window-s", "1", "--samples", "200", "--buffer-mib", "16", env=env)

    status = run_loader(settings)

    assert probed.returncode == 0, probed.stderr
    assert (status["rows_total"], status["quarantined_total"]) == (1, 0)
    [row] = lake_rows(settings, "latency").to_pylist()
    assert row["controller_id"] == CONTROLLER_ID and row["host"] == "probe-host"
    assert (row["memory_tier"], row["op"], row["head_or_ld"], row["window_s"]) == ("cxl", "read", 0, 1)
    assert row["scale"] == contract.HISTOGRAM_SCALE
    assert before - timedelta(seconds=1) <= row["window_start"] <= datetime.now(UTC)
    counts = row["bucket_counts"]
    assert sum(counts) == row["count"] == 200 and counts[0] > 0 and counts[-1] > 0
    assert contract.bucket_index(row["min_ns"]) == row["bucket_offset"]
    assert contract.bucket_index(row["max_ns"]) == row["bucket_offset"] + len(counts) - 1
    assert row["min_ns"] * 200 <= row["sum_ns"] <= row["max_ns"] * 200
    assert 0 <= row["over_slo"] <= row["count"]
    con = connect(settings, read_only=True)
    try:
        finding = histogram_consistency(con, Window(before - timedelta(seconds=1), datetime.now(UTC)))
    finally:
        con.close()
    assert (finding.checked, finding.failing) == (1, 0)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tier", "cxl"], "--controller-id is required"),
        (["--controller-id", CONTROLLER_ID], "--controller-id is required"),
        (["--tier", "cxl", "--controller-id", "0x1D9A"], "16 lower-case hex digits"),
        (["--hops", "0"], "--hops must be from 1"),
        (["--windows", "-1"], "--windows must be from 0"),
        (["--buffer-mib", "lots"], "--buffer-mib"),
        (["--host", " "], "--host must not be empty"),
    ],
)
def test_bad_arguments_get_one_line_and_status_2(args, message):
    result = _run_probe(*args, "--print")

    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and message in result.stderr


def test_an_unreachable_broker_gets_one_line_and_status_2():
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}"}

    result = _run_probe("--windows", "1", "--buffer-mib", "1", env=env)

    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "cannot reach KAFKA_BOOTSTRAP_SERVERS" in result.stderr
