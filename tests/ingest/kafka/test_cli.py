"""The operator's commands end to end: simulate --to-kafka → ingest → sql, and load DIR, with one-line errors."""

from __future__ import annotations

import csv
import io
import json

import pytest

from ingest import contract
from ingest.sim.parquet_sink import write_run
from tests.ingest.kafka.helpers import lake_count, run_cli, run_main, simulation

# Every stream's rows but the inventory's (one per controller, checked apart).
COUNT_ALL = " + ".join(
    f"(SELECT count(*) FROM raw.{name})"
    for topic, name in contract.TABLE_NAMES.items()
    if topic != contract.TOPIC_INVENTORY
)


@pytest.mark.kafka
def test_simulate_to_kafka_then_ingest_then_query(settings, monkeypatch, capsys):
    def leo_fleet(*args: str) -> tuple[int, str, str]:
        return run_main(settings, monkeypatch, capsys, *args)

    published = leo_fleet("simulate", "--to-kafka", "--controllers", "40", "--hours", "1", "--seed", "3")
    ingested = leo_fleet("ingest", "--until-idle", "--json", "--idle-seconds", "1")
    counted = leo_fleet("sql", "-c", f"SELECT {COUNT_ALL} AS telemetry_rows", "--format", "json")

    assert published[0] == ingested[0] == counted[0] == 0, (published[2], ingested[2], counted[2])
    final = json.loads(ingested[1].splitlines()[-1])
    assert final["state"] == "stopped" and final["quarantined_total"] == 0
    telemetry_rows = json.loads(counted[1])[0]["telemetry_rows"]
    assert telemetry_rows + 40 == final["rows_total"]  # + one inventory row per controller
    assert f"published {final['rows_total']:,} rows" in published[1]
    assert lake_count(settings, "SELECT count(*) FROM raw.truth_faults") > 0


def test_load_a_run_directory_then_query_it_in_every_format_read_only(lake_settings, tmp_path, monkeypatch, capsys):
    def leo_fleet(*args: str) -> tuple[int, str, str]:
        return run_main(lake_settings, monkeypatch, capsys, *args)

    run_dir = tmp_path / "run"
    summary = write_run(simulation(controllers=10, hours=1), run_dir, progress=False)

    loaded = leo_fleet("load", str(run_dir))
    again = leo_fleet("load", str(run_dir))
    query = "SELECT controller_id, count(*) AS n FROM raw.latency GROUP BY ALL ORDER BY controller_id"
    as_csv = leo_fleet("sql", "-c", query, "--format", "csv")
    as_json = leo_fleet("sql", "-c", query, "--format", "json")
    as_table = leo_fleet("sql", "-c", query)
    typo = leo_fleet("sql", "-c", "SELEC 1")
    write = leo_fleet("sql", "-c", "DELETE FROM raw.latency")

    assert loaded[0] == 0 and "loaded" in loaded[1], loaded[2]
    assert "nothing new" in again[1]
    rows = list(csv.DictReader(io.StringIO(as_csv[1])))
    assert sum(int(row["n"]) for row in rows) == summary.rows["latency"]
    assert json.loads(as_json[1]) == [{"controller_id": r["controller_id"], "n": int(r["n"])} for r in rows]
    assert as_table[1].splitlines()[0].split() == ["controller_id", "n"]
    assert len(as_table[1].splitlines()) == len(rows) + 2
    sources = lake_count(lake_settings, "SELECT count(DISTINCT source_file) FROM raw.errors WHERE kafka_topic IS NULL")
    assert sources == 1
    for status, _, stderr in (typo, write):
        assert status == 2 and stderr.count("\n") == 1
    assert "read-only" in write[2].lower() or "read only" in write[2].lower()
    assert lake_count(lake_settings, "SELECT count(*) FROM raw.latency") == summary.rows["latency"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["sql", "-c", "SELECT * FROM raw.latency"], "no lake at"),
        (["load", "/nonexistent/run"], "is not a directory"),
        (["simulate", "--controllers", "5"], "give --out DIR"),
    ],
)
def test_bad_input_gets_one_line_and_status_2(lake_settings, args, message):
    result = run_cli(lake_settings, *args)

    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and message in result.stderr
