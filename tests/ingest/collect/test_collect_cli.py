"""`leo-fleet collect --once` → the real broker → `leo-fleet ingest` → the lake: exact rows, nothing twice or lost
across runs, an unmappable line or rasdaemon row quarantined with its raw bytes and reason; bad arguments get one
line and exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import pyarrow.compute as pc
import pytest

from ingest import contract
from ingest.collect import rasdaemon
from ingest.collect.cxl_monitor import HostIdentity, map_lines
from ingest.collect.sysfs import devices_by_function
from ingest.kafka.broker import free_port
from tests.ingest.collect import fixtures as fx
from tests.ingest.collect import rasdaemon_db as db
from tests.ingest.kafka.helpers import (
    NATURAL_KEYS,
    as_stored,
    duplicates,
    lake_count,
    lake_rows,
    run_cli,
    run_main,
    sorted_by,
)


@pytest.mark.kafka
def test_collect_then_ingest_exactly_once_with_the_bad_line_quarantined(settings, tmp_path, monkeypatch, capsys):
    def leo_fleet(*args: str) -> tuple[int, str, str]:
        status, out, err = run_main(settings, monkeypatch, capsys, *args)
        assert status == 0, err
        return status, out, err

    monitor = tmp_path / "cxl-monitor.log"
    sysfs_root = fx.fake_sysfs(tmp_path / "sys")
    collect = ("collect", "--cxl-monitor", str(monitor), "--sysfs-root", str(sysfs_root))
    collect += ("--state-dir", str(tmp_path / "state"), "--once", "--host", "host-a", "--rack", "r7", "--region", "eu")
    ingest = ("ingest", "--until-idle", "--json", "--idle-seconds", "1")
    fx.write_lines(monitor, [fx.line(event) for event in fx.EVENTS])

    first = json.loads(leo_fleet(*collect)[1])
    leo_fleet(*ingest)
    columns = [name for name in contract.ERRORS_SCHEMA.names if name != "ts"]  # ts: when the collector read it
    after_first = sorted_by(lake_rows(settings, "errors", columns), ("event_id",))

    fx.write_lines(monitor, [fx.line(fx.AER_CE, status=0x4), fx.MALFORMED, fx.line(fx.POISON, dpa=0x80)])
    second = json.loads(leo_fleet(*collect)[1])
    leo_fleet(*ingest)

    assert {key: first[key] for key in ("errors", "link", "inventory", "rejected", "reasons", "delivery")} == {
        "errors": 7,
        "link": 2,
        "inventory": 1,
        "rejected": 0,
        "reasons": [],
        "delivery": "sent",
    }
    assert (first["spool_segments"], first["spool_bytes"], first["dropped_lines"]) == (0, 0, 0)
    assert (second["errors"], second["link"], second["inventory"], second["rejected"]) == (2, 2, 0, 1)
    mapped, _ = map_lines([fx.line(event) for event in fx.EVENTS], HostIdentity("host-a", "r7", "eu"), 0)
    assert after_first.equals(sorted_by(as_stored(mapped.select(columns)), ("event_id",)))  # every field, as mapped
    assert lake_count(settings, "SELECT count(*) FROM raw.errors") == 9
    assert lake_count(settings, "SELECT count(*) FROM raw.errors WHERE record_type = 'poison' AND dpa = 128") == 1
    assert lake_count(settings, "SELECT count(*) FROM raw.link") == 4
    assert lake_count(settings, "SELECT count(*) FROM raw.inventory WHERE firmware_version = '1.4.2'") == 1
    assert duplicates(settings) == dict.fromkeys(NATURAL_KEYS, 0)
    quarantined = lake_rows(settings, "quarantine", ["kafka_topic", "reason_code", "reason", "raw_bytes"]).to_pylist()
    assert len(quarantined) == 1
    assert quarantined[0]["kafka_topic"] == "leo.errors" and quarantined[0]["raw_bytes"] == fx.MALFORMED
    assert quarantined[0]["reason_code"] == "producer_rejected"
    assert quarantined[0]["reason"].startswith("producer_rejected: bad_json: ")


@pytest.mark.kafka
def test_rasdaemon_rows_reach_the_lake_once_each_with_the_bad_row_quarantined(settings, tmp_path, monkeypatch, capsys):
    def leo_fleet(*args: str) -> dict:
        status, out, err = run_main(settings, monkeypatch, capsys, *args)
        assert status == 0, err
        return json.loads(out.splitlines()[-1]) if args[0] == "collect" else {}

    database = db.create(tmp_path / "ras-mc_event.db")
    sysfs_root = fx.fake_sysfs(tmp_path / "sys")
    collect = ("collect", "--rasdaemon", str(database), "--state-dir", str(tmp_path / "state"), "--once")
    collect += ("--sysfs-root", str(sysfs_root), "--host", "host-a", "--rack", "r7", "--region", "eu")
    ingest = ("ingest", "--until-idle", "--json", "--idle-seconds", "1")
    for table, row in db.ROWS.items():
        db.insert(database, table, row)
    db.insert(database, "aer_event", db.OTHER_DEVICE_AER)  # not a CXL device: skipped
    db.insert(database, "cxl_overflow_event", db.ROWS["cxl_overflow_event"] | {"log_type": "Unknown"})
    identity = HostIdentity("host-a", "r7", "eu")
    mapped = rasdaemon.read_new(database, {}, identity, devices_by_function(sysfs_root)).rows

    first = leo_fleet(*collect)
    leo_fleet(*ingest)
    second = leo_fleet(*collect)  # a restart with nothing new
    db.insert(database, "cxl_dram_event", db.ROWS["cxl_dram_event"] | {"bank": 3})
    db.insert(database, "aer_event", db.ROOT_PORT_AER)
    third = leo_fleet(*collect)
    leo_fleet(*ingest)

    assert (first["errors"], first["skipped"], first["rejected"], first["delivery"]) == (9, 1, 1, "sent")
    assert (second["errors"], second["rejected"], third["errors"], third["rejected"]) == (0, 0, 2, 0)
    columns = contract.ERRORS_SCHEMA.names
    assert lake_count(settings, "SELECT count(*) FROM raw.errors") == 11
    assert lake_count(settings, "SELECT count(DISTINCT event_id) FROM raw.errors") == 11
    assert lake_count(settings, "SELECT count(*) FROM raw.errors WHERE record_type = 'dram' AND bank = 3") == 1
    assert lake_count(settings, "SELECT count(*) FROM raw.errors WHERE pci_bdf = '0000:00:01.0'") == 1
    expected = sorted_by(as_stored(mapped), ("event_id",))
    stored = sorted_by(lake_rows(settings, "errors", columns), ("event_id",))
    assert mapped.num_rows == 9
    assert stored.filter(pc.is_in(stored["event_id"], expected["event_id"])).equals(expected)  # every column
    quarantined = lake_rows(settings, "quarantine", ["reason_code", "reason", "raw_bytes"]).to_pylist()
    assert len(quarantined) == 1 and quarantined[0]["reason_code"] == "producer_rejected"
    assert quarantined[0]["reason"].startswith("producer_rejected: bad_field: log_type")
    assert json.loads(quarantined[0]["raw_bytes"])["log_type"] == "Unknown"


def test_with_no_broker_reachable_once_spools_the_poll_and_exits_0(lake_settings, tmp_path):
    monitor = tmp_path / "cxl-monitor.log"
    fx.write_lines(monitor, [fx.line(event) for event in fx.EVENTS])
    nowhere = replace(lake_settings, kafka=replace(lake_settings.kafka, bootstrap_servers=f"127.0.0.1:{free_port()}"))

    result = run_cli(nowhere, "collect", "--cxl-monitor", str(monitor), "--state-dir", str(tmp_path / "s"), "--once")

    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["errors"], summary["delivery"], summary["spool_segments"]) == (7, "spooled", 1)
    assert len(list((tmp_path / "s" / "spool").glob("*.segment"))) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["collect", "--state-dir", "{tmp}/s"], "nothing to collect"),
        (["collect", "--state-dir", "{tmp}/s", "--cxl-monitor", "{tmp}/missing.log"], "is not a file"),
        (["collect", "--state-dir", "{tmp}/s", "--sysfs-root", "{tmp}"], "not a sysfs tree"),
        (["collect", "--state-dir", "{tmp}/s", "--sysfs-root", "/sys", "--interval", "0"], "--interval"),
        (["collect", "--sysfs-root", "/sys"], "--state-dir"),
        (["collect", "--state-dir", "{tmp}/s", "--rasdaemon", "/etc/hostname"], "not an SQLite database"),
        (["collect", "--state-dir", "{tmp}/s", "--sysfs-root", "/sys", "--spool-max-bytes", "-1"], "--spool-max"),
    ],
)
def test_bad_arguments_get_one_line_and_status_2(lake_settings, tmp_path, args, message):
    result = run_cli(lake_settings, *(arg.format(tmp=tmp_path) for arg in args))

    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and message in result.stderr


def test_the_collector_builds_arrow_tables_without_importing_pandas():
    """pyarrow would import pandas (installed here as a dev dependency) on its first array from Python objects;
    the collect command keeps it out of its process, and the tables it builds are the same."""
    pytest.importorskip("pandas")
    code = (
        "import sys; from pipelines.cli.collect import WithoutPandas; sys.meta_path.insert(0, WithoutPandas()); "
        "import pyarrow as pa; table = pa.table({'a': [1, 2]}); "
        "assert table.column('a').to_pylist() == [1, 2] and 'pandas' not in sys.modules; print('ok')"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert done.stdout.strip() == "ok", done.stderr[-2000:]
