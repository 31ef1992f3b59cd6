"""rasdaemon's SQLite tables → error rows: every stored field lands in its column as the trace event's would (one
mapping), rows are read once by id per table, and a row that cannot be mapped is a reject with its raw JSON."""

from __future__ import annotations

import json
import os
import sqlite3

import pytest

from ingest import contract
from ingest.collect import rasdaemon
from ingest.collect.cxl_monitor import event_id
from ingest.collect.sysfs import devices_by_function
from ingest.kafka import codec
from tests.ingest.collect import fixtures as fx
from tests.ingest.collect import rasdaemon_db as db
from tests.ingest.collect.test_cxl_monitor import EXPECTED, IDENTITY, NOTHING, SAME_FOR_ALL, plain_row

# What each table's fixture row becomes: the trace event's columns (test_cxl_monitor.EXPECTED), except where
# rasdaemon stores less: header and overflow times in whole seconds, and 0 for a field the device marked invalid.
EXPECTED_BY_TABLE = {
    "cxl_general_media_event": EXPECTED["cxl_general_media"] | {"device_ts": db.DEVICE_TIME_NS, "rank": 0},
    "cxl_dram_event": EXPECTED["cxl_dram"],
    "cxl_memory_module_event": EXPECTED["cxl_memory_module"] | {"device_ts": db.DEVICE_TIME_NS},
    "cxl_aer_ue_event": EXPECTED["cxl_aer_uncorrectable_error"],
    "cxl_aer_ce_event": EXPECTED["cxl_aer_correctable_error"],
    "cxl_poison_event": EXPECTED["cxl_poison"],
    "cxl_overflow_event": EXPECTED["cxl_overflow"]
    | {"overflow_first_ts": db.DEVICE_TIME_NS, "overflow_last_ts": db.DEVICE_TIME_NS + 5_000_000_000},
    "cxl_generic_event": {
        "record_type": "generic",
        "log_type": "Fatal",
        "severity": "info",
        "hdr_flags": 0x18,
        "device_ts": db.DEVICE_TIME_NS,
    },
    "aer_event": {
        "record_type": "aer_event",
        "severity": "corrected",
        "hdr_flags": 0,
        "status": 0x81,
        "error_names": ["RxErr", "BadDLLP"],
    },
}


@pytest.fixture
def database(tmp_path):
    return db.create(tmp_path / "ras-mc_event.db")


@pytest.fixture
def devices(tmp_path):
    return devices_by_function(fx.fake_sysfs(tmp_path / "sys"))


def read(database, devices, state=None):
    return rasdaemon.read_new(database, state or {}, IDENTITY, devices)


def stored(database, table: str, row_id: int) -> dict:
    connection = sqlite3.connect(database)
    connection.row_factory = sqlite3.Row
    try:
        return dict(connection.execute(f"SELECT * FROM {table} WHERE id = ?", (row_id,)).fetchone())
    finally:
        connection.close()


@pytest.mark.parametrize("table", list(db.ROWS))
def test_every_stored_field_lands_in_its_column(database, devices, table):
    db.insert(database, table, db.ROWS[table])

    batch = read(database, devices)

    assert batch.rejects == [] and batch.skipped == 0
    raw = rasdaemon.raw_row(table, stored(database, table, 1))
    expected = {
        **NOTHING,
        **SAME_FOR_ALL,
        "event_id": event_id("host-a", raw),
        "ts": db.HOST_TIME_NS,  # rasdaemon's timestamp: when it handled the event
        **EXPECTED_BY_TABLE[table],
    }
    assert plain_row(batch.rows) == expected
    codec._validate(batch.rows, contract.ERRORS_SCHEMA)


def test_aer_of_the_port_above_maps_to_the_device_and_other_devices_are_skipped(database, devices):
    db.insert(database, "aer_event", db.OTHER_DEVICE_AER, db.ROOT_PORT_AER)

    batch = read(database, devices)

    assert batch.skipped == 1 and batch.rejects == []
    row = plain_row(batch.rows)
    assert (row["controller_id"], row["memdev"], row["pci_bdf"]) == (fx.CONTROLLER_ID, "mem0", fx.ROOT_PORT)
    assert (row["severity"], row["status"], row["error_names"]) == ("uncorrected_fatal", 0x21, ["Undefined", "SDES"])
    assert batch.state["last_ids"]["aer_event"] == 2  # the skipped row is read past too


def test_rows_are_read_once_by_id_per_table_and_a_replaced_database_from_its_start(database, devices, tmp_path):
    db.insert(database, "cxl_aer_ce_event", db.ROWS["cxl_aer_ce_event"], db.ROWS["cxl_aer_ce_event"])
    db.insert(database, "cxl_poison_event", db.ROWS["cxl_poison_event"])
    first = read(database, devices)
    db.insert(database, "cxl_aer_ce_event", db.ROWS["cxl_aer_ce_event"] | {"error_status": 0x4})

    second = read(database, devices, first.state)
    nothing_new = read(database, devices, second.state)
    replacement = db.create(tmp_path / "new.db")
    db.insert(replacement, "cxl_poison_event", db.ROWS["cxl_poison_event"])
    os.replace(replacement, database)  # rasdaemon's database deleted and created again: a new inode
    after_replacement = read(database, devices, second.state)

    last_ids = first.state["last_ids"]
    assert first.rows.num_rows == 3 and (last_ids["cxl_aer_ce_event"], last_ids["cxl_poison_event"]) == (2, 1)
    assert second.rows.column("status").to_pylist() == [0x4]
    assert nothing_new.rows.num_rows == 0 and nothing_new.state == second.state
    assert after_replacement.rows.column("record_type").to_pylist() == ["poison"]
    assert len(set(first.rows.column("event_id").to_pylist())) == 3  # same content, another id: another event


def test_a_table_whose_ids_start_again_is_read_from_its_start(database, devices):
    db.insert(database, "cxl_aer_ce_event", db.ROWS["cxl_aer_ce_event"], db.ROWS["cxl_aer_ce_event"])
    state = read(database, devices).state
    with sqlite3.connect(database) as connection:
        connection.execute("DELETE FROM cxl_aer_ce_event")
    connection.close()
    db.insert(database, "cxl_aer_ce_event", db.ROWS["cxl_aer_ce_event"])

    assert read(database, devices, state).rows.num_rows == 1


def test_a_missing_database_has_nothing_new_and_keeps_the_position(tmp_path, devices):
    state = {"inode": 1, "last_ids": {"cxl_dram_event": 9}}

    batch = read(tmp_path / "absent.db", devices, state)

    assert batch.rows.num_rows == 0 and batch.state == state


@pytest.mark.parametrize(
    ("table", "changes", "reason"),
    [
        ("cxl_overflow_event", {"log_type": "Unknown"}, "bad_field: log_type"),
        ("cxl_dram_event", {"hdr_ts": "yesterday"}, "bad_field: hdr_ts"),
        ("cxl_aer_ce_event", {"timestamp": None}, "bad_field: timestamp"),
        ("cxl_aer_ce_event", {"serial": None}, "bad_field: serial"),
        ("cxl_general_media_event", {"type": 9}, "bad_field: type 9"),
        ("aer_event", {"err_msg": "Receiver Error, Cosmic Ray"}, "bad_field: err_msg names 'Cosmic Ray'"),
        ("aer_event", {"err_type": "Unknown severity"}, "bad_field: aer_event"),
    ],
)
def test_a_row_that_cannot_be_mapped_is_a_reject_with_its_row_as_json(database, devices, table, changes, reason):
    db.insert(database, table, db.ROWS[table] | changes, db.ROWS[table])

    batch = read(database, devices)

    assert batch.rows.num_rows == 1 and len(batch.rejects) == 1
    assert batch.rejects[0].reason.startswith(reason)
    quarantined = json.loads(batch.rejects[0].raw)
    assert (quarantined["table"], quarantined["id"]) == (table, 1)
    assert batch.state["last_ids"][table] == 2  # the reject is read past: it reaches the quarantine instead
