"""Every documented field of each `cxl monitor` event lands in its contract column; unmappable lines are rejects."""

from __future__ import annotations

import pyarrow as pa
import pytest

from ingest import contract
from ingest.collect.cxl_monitor import HostIdentity, event_id, map_lines
from ingest.kafka import codec
from tests.ingest.collect import fixtures as fx

IDENTITY = HostIdentity("host-a", "rack-7", "eu-west")
RECEIVED_NS = 1_764_871_260_000_000_000
SAME_FOR_ALL = {
    "controller_id": fx.CONTROLLER_ID,
    "host": "host-a",
    "rack": "rack-7",
    "region": "eu-west",
    "memdev": "mem0",
    "pci_bdf": fx.BDF,
    "counter_epoch": 0,
}
NOTHING = dict.fromkeys(contract.ERRORS_SCHEMA.names)
for _column in ("event_id", "ts", *SAME_FOR_ALL):
    NOTHING.pop(_column)
EXPECTED = {
    "cxl_general_media": {
        "record_type": "general_media",
        "log_type": "Warning",
        "severity": "corrected",
        "hdr_flags": 0x18,
        "device_ts": fx.DEVICE_TS,
        "dpa": 0x40001000,
        "hpa": 0x1_4000_1000,
        "descriptor": 2,
        "mem_event_type": 4,
        "transaction_type": 5,
        "sub_type": 0,
        "channel": 1,
        "rank": None,  # validity_flags says rank is not valid
        "cme_count": 37,
    },
    "cxl_dram": {
        "record_type": "dram",
        "log_type": "Failure",
        "severity": "uncorrected_nonfatal",
        "hdr_flags": 0x18,
        "device_ts": None,  # hdr_timestamp 0
        "dpa": 0x2000,
        "hpa": None,  # ULLONG_MAX: no region
        "descriptor": 1,
        "mem_event_type": 0,
        "transaction_type": 1,
        "sub_type": 1,
        "channel": 0,
        "rank": 3,
        "bank_group": 5,
        "bank": 2,
        "row": 0x1FFFF,
        "column": 1023,
        "nibble_mask": 0x10,
    },
    "cxl_memory_module": {
        "record_type": "memory_module",
        "log_type": "Informational",
        "severity": "info",
        "hdr_flags": 0x18,
        "device_ts": fx.DEVICE_TS,
        "mem_event_type": 3,
        "sub_type": 0,
        "health_status": 1,
        "media_status": 0,
        "additional_status": 4,
        "life_used_pct": None,  # 0xFF: not implemented
        "device_temp_c": 71,
        "dirty_shutdown_cnt": 1,
        "cor_vol_err_cnt": 1234,
        "cor_per_err_cnt": 0,
    },
    "cxl_aer_uncorrectable_error": {
        "record_type": "cxl_aer_ue",
        "severity": "uncorrected_nonfatal",
        "hdr_flags": 0,
        "status": 0x180,
        "first_error": 0x80,
        "error_names": ["Memory Data ECC Error", "REINIT Threshold Hit"],
    },
    "cxl_aer_correctable_error": {
        "record_type": "cxl_aer_ce",
        "severity": "corrected",
        "hdr_flags": 0,
        "status": 0xC,
        "error_names": ["CRC Threshold Hit", "Retry Threshold"],
    },
    "cxl_poison": {
        "record_type": "poison",
        "severity": "uncorrected_nonfatal",
        "hdr_flags": 0,
        "dpa": 0x40,
        "hpa": 0x1_0000_0040,
    },
    "cxl_overflow": {
        "record_type": "overflow",
        "log_type": "Warning",
        "severity": "info",
        "hdr_flags": 0,
        "overflow_count": 412,
        "overflow_first_ts": fx.DEVICE_TS,
        "overflow_last_ts": fx.DEVICE_TS + 5_000_000_000,
    },
}


def plain_row(table: pa.Table) -> dict:
    """The one row with timestamps as integer nanoseconds and dictionaries as strings."""
    assert table.num_rows == 1
    row = {}
    for field in table.schema:
        column = table.column(field.name)
        if pa.types.is_timestamp(field.type):
            column = column.cast(pa.int64())
        row[field.name] = column.to_pylist()[0]
    return row


@pytest.mark.parametrize("event", fx.EVENTS, ids=[e["event"] for e in fx.EVENTS])
def test_every_field_lands_in_its_column(event):
    raw = fx.line(event)

    table, rejects = map_lines([raw], IDENTITY, RECEIVED_NS)

    assert rejects == []
    assert table.schema.equals(contract.ERRORS_SCHEMA, check_metadata=True)
    expected = {
        **NOTHING,
        **SAME_FOR_ALL,
        "event_id": event_id("host-a", raw),
        "ts": RECEIVED_NS,
        **EXPECTED[event["event"]],
    }
    assert plain_row(table) == expected
    codec._validate(table, contract.ERRORS_SCHEMA)  # what the loader checks: enums, nulls, types


def test_fields_nested_under_data_are_read_the_same_way():
    flat = fx.GENERAL_MEDIA
    nested = {key: flat[key] for key in ("system", "event", "timestamp")}
    nested["data"] = {key: value for key, value in flat.items() if key not in nested}

    table, _ = map_lines([fx.line(nested)], IDENTITY, RECEIVED_NS)

    assert plain_row(table) | {"event_id": None} == plain_row(map_lines([fx.line(flat)], IDENTITY, RECEIVED_NS)[0]) | {
        "event_id": None
    }


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (fx.MALFORMED, "bad_json: "),
        (b"[1, 2]", "bad_json: not a JSON object"),
        (fx.line(fx.AER_CE, event="cxl_port_aer_correctable_error"), "unsupported_event: "),
        (fx.line(fx.AER_CE, system="ras"), "unsupported_event: "),
        (fx.line({k: v for k, v in fx.AER_CE.items() if k != "serial"}), "missing_field: "),
        (fx.line(fx.AER_CE, serial=-1), "bad_field: serial"),
        (fx.line(fx.DRAM, type=9), "bad_field: type 9"),
        (fx.line(fx.OVERFLOW, log=4), "bad_field: log 4"),
        (fx.line(fx.POISON, memdev=""), "bad_field: memdev"),
    ],
)
def test_an_unmappable_line_is_a_reject_with_its_raw_bytes_and_reason(raw, reason):
    table, rejects = map_lines([fx.line(fx.AER_CE), raw, b"  "], IDENTITY, RECEIVED_NS)

    assert table.num_rows == 1
    assert [r.raw for r in rejects] == [raw]
    assert rejects[0].reason.startswith(reason)


def test_the_same_line_gets_the_same_event_id_and_another_host_another():
    raw = fx.line(fx.DRAM)

    first, _ = map_lines([raw], IDENTITY, RECEIVED_NS)
    again, _ = map_lines([raw], IDENTITY, RECEIVED_NS + 1)
    elsewhere, _ = map_lines([raw], HostIdentity("host-b", "rack-7", "eu-west"), RECEIVED_NS)

    assert first["event_id"] == again["event_id"] != elsewhere["event_id"]
