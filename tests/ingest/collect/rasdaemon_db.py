"""A rasdaemon SQLite database as rasdaemon writes it, from mchehab/rasdaemon's table descriptions, not the collector.

ras-record.c creates each table as `CREATE TABLE IF NOT EXISTS <name> (<column> <type>, …)` with an `id INTEGER
PRIMARY KEY`; integer fields are SQLite INTEGER (bound as signed 32 or 64 bits), times TEXT written by strftime
"%Y-%m-%d %H:%M:%S %z" in the host's zone, byte arrays BLOB. The CXL handlers (ras-cxl-handler.c) store the log as
text ("Informational" … "Fatal"), the record header and overflow timestamps as such text ("1970-01-01 00:00:00
+0000" for 0), and 0 for a location field its validity flags mark invalid. The AER handler (ras-aer-handler.c)
stores err_type "Corrected" / "Uncorrected (Non-Fatal)" / "Uncorrected (Fatal)" and err_msg as the status bits'
names joined by ", ", then " TLP Header: …" when the header is valid.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.ingest.collect import fixtures as fx

_ID = [("id", "INTEGER PRIMARY KEY"), ("timestamp", "TEXT")]
_DEVICE = [("memdev", "TEXT"), ("host", "TEXT"), ("serial", "INTEGER")]
_HEADER = [
    *_ID,
    *_DEVICE,
    ("log_type", "TEXT"),
    ("hdr_uuid", "TEXT"),
    ("hdr_flags", "INTEGER"),
    ("hdr_handle", "INTEGER"),
    ("hdr_related_handle", "INTEGER"),
    ("hdr_ts", "TEXT"),
    ("hdr_length", "INTEGER"),
    ("hdr_maint_op_class", "INTEGER"),
    ("hdr_maint_op_sub_class", "INTEGER"),
    ("hdr_ld_id", "INTEGER"),
    ("hdr_head_id", "INTEGER"),
]
_MEDIA = [
    ("dpa", "INTEGER"),
    ("dpa_flags", "INTEGER"),
    ("descriptor", "INTEGER"),
    ("type", "INTEGER"),
    ("transaction_type", "INTEGER"),
    ("channel", "INTEGER"),
    ("rank", "INTEGER"),
]
_PLDM = [("pldm_entity_id", "BLOB"), ("pldm_resource_id", "BLOB")]
SCHEMA = {
    "aer_event": [*_ID, ("dev_name", "TEXT"), ("err_type", "TEXT"), ("err_msg", "TEXT")],
    "mc_event": [*_ID, ("err_count", "INTEGER"), ("err_type", "TEXT"), ("err_msg", "TEXT"), ("label", "TEXT")],
    "cxl_poison_event": [
        *_ID,
        *_DEVICE,
        ("trace_type", "TEXT"),
        ("region", "TEXT"),
        ("region_uuid", "TEXT"),
        ("hpa", "INTEGER"),
        ("dpa", "INTEGER"),
        ("dpa_length", "INTEGER"),
        ("source", "TEXT"),
        ("flags", "INTEGER"),
        ("overflow_ts", "TEXT"),
        ("hpa_alias0", "INTEGER"),
    ],
    "cxl_aer_ue_event": [
        *_ID,
        *_DEVICE,
        ("error_status", "INTEGER"),
        ("first_error", "INTEGER"),
        ("header_log", "BLOB"),
    ],
    "cxl_aer_ce_event": [*_ID, *_DEVICE, ("error_status", "INTEGER")],
    "cxl_overflow_event": [
        *_ID,
        *_DEVICE,
        ("log_type", "TEXT"),
        ("count", "INTEGER"),
        ("first_ts", "TEXT"),
        ("last_ts", "TEXT"),
    ],
    "cxl_generic_event": [*_HEADER, ("data", "BLOB")],
    "cxl_general_media_event": [
        *_HEADER,
        *_MEDIA,
        ("device", "INTEGER"),
        ("comp_id", "BLOB"),
        ("hpa", "INTEGER"),
        ("region", "TEXT"),
        ("region_uuid", "TEXT"),
        *_PLDM,
        ("sub_type", "INTEGER"),
        ("cme_threshold_ev_flags", "INTEGER"),
        ("cme_count", "INTEGER"),
        ("hpa_alias0", "INTEGER"),
    ],
    "cxl_dram_event": [
        *_HEADER,
        *_MEDIA,
        ("nibble_mask", "INTEGER"),
        ("bank_group", "INTEGER"),
        ("bank", "INTEGER"),
        ("row", "INTEGER"),
        ("column", "INTEGER"),
        ("cor_mask", "BLOB"),
        ("hpa", "INTEGER"),
        ("region", "TEXT"),
        ("region_uuid", "TEXT"),
        ("comp_id", "BLOB"),
        *_PLDM,
        ("sub_type", "INTEGER"),
        ("sub_channel", "INTEGER"),
        ("cme_threshold_ev_flags", "INTEGER"),
        ("cvme_count", "INTEGER"),
        ("hpa_alias0", "INTEGER"),
    ],
    "cxl_memory_module_event": [
        *_HEADER,
        ("event_type", "INTEGER"),
        ("health_status", "INTEGER"),
        ("media_status", "INTEGER"),
        ("life_used", "INTEGER"),
        ("dirty_shutdown_cnt", "INTEGER"),
        ("cor_vol_err_cnt", "INTEGER"),
        ("cor_per_err_cnt", "INTEGER"),
        ("device_temp", "INTEGER"),
        ("add_status", "INTEGER"),
        ("event_sub_type", "INTEGER"),
        ("comp_id", "BLOB"),
        *_PLDM,
    ],
}

HOST_TIME = "2025-12-04 19:00:05 +0100"  # rasdaemon's timestamp column: host-local time with its offset
HOST_TIME_NS = 1_764_871_205 * 10**9
DEVICE_TIME = "2025-12-04 19:00:00 +0100"  # fx.DEVICE_TS as rasdaemon's convert_timestamp writes it (seconds)
DEVICE_TIME_NS = 1_764_871_200 * 10**9
ZERO_TIME = "1970-01-01 00:00:00 +0000"

_COMMON = {"timestamp": HOST_TIME, "memdev": "mem0", "host": fx.BDF, "serial": fx.SERIAL}
_HEADER_VALUES = {
    "hdr_uuid": "fbcd0a77-c260-417f-85a9-088b1621eba6",
    "hdr_flags": 0x18,
    "hdr_handle": 7,
    "hdr_related_handle": 0,
    "hdr_ts": DEVICE_TIME,
    "hdr_length": 128,
    "hdr_maint_op_class": 0,
    "hdr_maint_op_sub_class": 0,
    "hdr_ld_id": 0,
    "hdr_head_id": 0,
}
ROWS = {
    "cxl_general_media_event": {
        **_COMMON,
        **_HEADER_VALUES,
        "log_type": "Warning",
        "dpa": 0x40001000,
        "dpa_flags": 1,
        "descriptor": 0x2,
        "type": 4,
        "transaction_type": 5,
        "channel": 1,
        "rank": 0,  # not valid on the device: rasdaemon stores 0
        "device": 0,
        "comp_id": bytes(16),
        "hpa": 0x1_4000_1000,
        "region": "region0",
        "region_uuid": "00000000-0000-0000-0000-000000000000",
        "pldm_entity_id": bytes(6),
        "pldm_resource_id": bytes(4),
        "sub_type": 0,
        "cme_threshold_ev_flags": 2,
        "cme_count": 37,
        "hpa_alias0": 0,
    },
    "cxl_dram_event": {
        **_COMMON,
        **_HEADER_VALUES,
        "log_type": "Failure",
        "hdr_ts": ZERO_TIME,  # a device whose clock was never set
        "dpa": 0x2000,
        "dpa_flags": 0,
        "descriptor": 0x1,
        "type": 0,
        "transaction_type": 1,
        "channel": 0,
        "rank": 3,
        "nibble_mask": 0x10,
        "bank_group": 5,
        "bank": 2,
        "row": 0x1FFFF,
        "column": 1023,
        "cor_mask": bytes(32),
        "hpa": -1,  # ULLONG_MAX (no region) bound as a signed 64-bit integer
        "region": "",
        "region_uuid": "00000000-0000-0000-0000-000000000000",
        "comp_id": bytes(16),
        "pldm_entity_id": bytes(6),
        "pldm_resource_id": bytes(4),
        "sub_type": 1,
        "sub_channel": 0,
        "cme_threshold_ev_flags": 0,
        "cvme_count": 0,
        "hpa_alias0": 0,
    },
    "cxl_memory_module_event": {
        **_COMMON,
        **_HEADER_VALUES,
        "log_type": "Informational",
        "event_type": 3,
        "health_status": 0x1,
        "media_status": 0,
        "life_used": 0xFF,
        "dirty_shutdown_cnt": 1,
        "cor_vol_err_cnt": 1234,
        "cor_per_err_cnt": 0,
        "device_temp": 71,
        "add_status": 0x4,
        "event_sub_type": 0,
        "comp_id": bytes(16),
        "pldm_entity_id": bytes(6),
        "pldm_resource_id": bytes(4),
    },
    "cxl_aer_ue_event": {**_COMMON, "error_status": 0x180, "first_error": 0x80, "header_log": bytes(512)},
    "cxl_aer_ce_event": {**_COMMON, "error_status": 0xC},
    "cxl_poison_event": {
        **_COMMON,
        "trace_type": "List",
        "region": "region0",
        "region_uuid": "00000000-0000-0000-0000-000000000000",
        "hpa": 0x1_0000_0040,
        "dpa": 0x40,
        "dpa_length": 64,
        "source": "Internal",
        "flags": 0,
        "overflow_ts": ZERO_TIME,
        "hpa_alias0": 0,
    },
    "cxl_overflow_event": {
        **_COMMON,
        "log_type": "Warning",
        "count": 412,
        "first_ts": DEVICE_TIME,
        "last_ts": "2025-12-04 19:00:05 +0100",
    },
    "cxl_generic_event": {**_COMMON, **_HEADER_VALUES, "log_type": "Fatal", "data": bytes(80)},
    "aer_event": {
        "timestamp": HOST_TIME,
        "dev_name": fx.BDF,
        "err_type": "Corrected",
        "err_msg": "Receiver Error, Bad DLLP",
    },
}
# rasdaemon records every PCIe device's AER: this one is not a CXL memory device (skipped by the collector).
OTHER_DEVICE_AER = {**ROWS["aer_event"], "dev_name": "0000:17:00.0", "err_msg": "Bad TLP"}
# The root port above the memdev, uncorrectable, with an unnamed bit and a valid TLP header.
ROOT_PORT_AER = {
    "timestamp": HOST_TIME,
    "dev_name": fx.ROOT_PORT,
    "err_type": "Uncorrected (Fatal)",
    "err_msg": "BIT0, Surprise Link Down TLP Header: 4a000001 0100000f 00000000 00000000",
}


def create(path: Path) -> Path:
    """An empty database with every table, as rasdaemon's ras_mc_event_opendb leaves it."""
    with sqlite3.connect(path) as connection:
        for table, columns in SCHEMA.items():
            fields = ", ".join(f"{name} {kind}" for name, kind in columns)
            connection.execute(f"CREATE TABLE IF NOT EXISTS {table} ({fields})")
    connection.close()
    return path


def insert(path: Path, table: str, *rows: dict) -> None:
    """Rows as rasdaemon's ras_store_* do: every column but id bound, id assigned by SQLite."""
    with sqlite3.connect(path) as connection:
        for row in rows:
            names = [name for name, _ in SCHEMA[table][1:]]
            marks = ", ".join("?" * len(names))
            connection.execute(
                f"INSERT INTO {table} ({', '.join(names)}) VALUES ({marks})", [row.get(name) for name in names]
            )
    connection.close()
