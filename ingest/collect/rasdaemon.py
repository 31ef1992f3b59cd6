"""rasdaemon's SQLite database → the contract's error rows (leo.errors), read incrementally by row id per table.

rasdaemon (mchehab/rasdaemon, ras-record.c) stores each kernel RAS event as one row of a table per event kind, with
an `INTEGER PRIMARY KEY` id that only grows. Its CXL tables hold the fields of the CXL trace events under the same
names, with four differences this module undoes before handing the record to the one mapping of trace events
(cxl_monitor.map_record): `log_type` is text ("Informational" … "Fatal"); `hdr_ts`, `first_ts` and `last_ts` are
host-local text times "%Y-%m-%d %H:%M:%S %z" (seconds; "1970-01-01 00:00:00 +0000" for 0); integers are SQLite's
signed 64 bits (a u64 such as ULLONG_MAX reads as -1) or were bound as signed 32 bits (a u32 with bit 31 set reads
as negative); and the validity flags are not kept: a field the device marked invalid is stored as 0, so every
stored location field is carried as stored. The row's `timestamp` (host wall clock when rasdaemon handled the
event) is the row's `ts`.

`aer_event` (timestamp, dev_name, err_type, err_msg) is PCIe AER of any device: only rows whose dev_name is a CXL
memory device's endpoint, or the port above one, become rows; other devices' rows are skipped and counted.
`err_msg` lists the status bits as rasdaemon names them, joined by ", " ("BIT<n>" for a bit without a name),
optionally followed by " TLP Header: …".
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

import pyarrow as pa

from ingest import contract
from ingest.collect.cxl_monitor import HostIdentity, Reject, Unmappable, base_row, event_id, map_record
from ingest.collect.sysfs import Device

# rasdaemon table → the CXL tracepoint whose fields it stores.
CXL_TABLES = {
    "cxl_aer_ue_event": "cxl_aer_uncorrectable_error",
    "cxl_aer_ce_event": "cxl_aer_correctable_error",
    "cxl_overflow_event": "cxl_overflow",
    "cxl_poison_event": "cxl_poison",
    "cxl_generic_event": "cxl_generic_event",
    "cxl_general_media_event": "cxl_general_media",
    "cxl_dram_event": "cxl_dram",
    "cxl_memory_module_event": "cxl_memory_module",
}
AER_TABLE = "aer_event"
TABLES = (*CXL_TABLES, AER_TABLE)
MAX_ROWS_PER_TABLE = 10_000  # per poll, so a long backlog is published in bounded steps

TIME_FORMAT = "%Y-%m-%d %H:%M:%S %z"
TEXT_TIMES = {"hdr_ts": "hdr_timestamp", "first_ts": "first_ts", "last_ts": "last_ts"}  # column → trace field
RENAMED = {"error_status": "status"}
INT64_COLUMNS = ("serial", "dpa", "hpa", "hpa_alias0")  # bound as int64: a u64 above 2**63 reads negative
SIGNED_COLUMNS = ("device_temp",)  # a signed field: negative is its value
ALL_VALID = 0xFFFF  # no validity flags stored: carry every location field as stored

# err_type → severity, and rasdaemon's names of the AER status bits (ras-aer-handler.c) → bit.
AER_SEVERITIES = {
    "Corrected": "corrected",
    "Uncorrected (Non-Fatal)": "uncorrected_nonfatal",
    "Uncorrected (Fatal)": "uncorrected_fatal",
}
AER_CORRECTABLE_NAMES = {
    "Receiver Error": 0,
    "Bad TLP": 6,
    "Bad DLLP": 7,
    "RELAY_NUM Rollover": 8,
    "Replay Timer Timeout": 12,
    "Advisory Non-Fatal": 13,
    "Corrected Internal Error": 14,
    "Header Log Overflow": 15,
}
AER_UNCORRECTABLE_NAMES = {
    "Data Link Protocol": 4,
    "Surprise Link Down": 5,
    "Poisoned TLP": 12,
    "Flow Control Protocol": 13,
    "Completion Timeout": 14,
    "Completer Abort": 15,
    "Unexpected Completion": 16,
    "Receiver Overflow": 17,
    "Malformed TLP": 18,
    "ECRC": 19,
    "Unsupported Request": 20,
    "ACS Violation": 21,
    "Uncorrected Internal": 22,
    "MC Blocked TLP": 23,
    "AtomicOp Egress Blocked": 24,
    "TLP Prefix Blocked": 25,
    "Poisoned TLP Egrees Blocked": 26,  # sic, as rasdaemon writes it
}
UNNAMED_BIT = re.compile(r"BIT(\d+)")


@dataclass(frozen=True)
class Batch:
    rows: pa.Table  # ERRORS_SCHEMA
    rejects: list[Reject]
    skipped: int  # aer_event rows of devices that are not CXL memory devices
    state: dict  # the position after these rows, to save once they are acknowledged


def read_new(db: Path, state: dict, identity: HostIdentity, devices: Mapping[str, Device]) -> Batch:
    """The rows after `state`'s last id of each table (at most MAX_ROWS_PER_TABLE each), mapped, and the new state.

    A database that is not there yet, or locked by rasdaemon past the timeout, has nothing new this poll. A new
    inode (the file was replaced) or a table whose ids fell below the saved one starts that table from id 0.
    """
    try:
        inode = os.stat(db).st_ino
        connection = sqlite3.connect(f"file:{quote(str(db))}?mode=ro", uri=True, timeout=5.0)
    except (FileNotFoundError, sqlite3.OperationalError):
        return Batch(pa.Table.from_pylist([], schema=contract.ERRORS_SCHEMA), [], 0, state)
    last_ids = dict(state.get("last_ids", {})) if state.get("inode") == inode else {}
    rows, rejects, skipped = [], [], 0
    try:
        present = {name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        for table in (name for name in TABLES if name in present):
            last = last_ids.get(table, 0)
            (highest,) = connection.execute(f"SELECT coalesce(max(id), 0) FROM {table}").fetchone()
            if highest < last:  # the table was emptied and refilled: its ids started again
                last = 0
            cursor = connection.execute(
                f"SELECT * FROM {table} WHERE id > ? ORDER BY id LIMIT ?", (last, MAX_ROWS_PER_TABLE)
            )
            names = [column[0] for column in cursor.description]
            for values in cursor:
                record = dict(zip(names, values, strict=True))
                raw = raw_row(table, record)
                last = record["id"]
                try:
                    row = map_row(table, record, identity, devices, event_id(identity.host, raw))
                except Unmappable as problem:
                    rejects.append(Reject(raw, str(problem)))
                    continue
                if row is None:
                    skipped += 1
                else:
                    rows.append(row)
            last_ids[table] = last
    except sqlite3.OperationalError:  # locked past the timeout: try again next poll from the same position
        return Batch(pa.Table.from_pylist([], schema=contract.ERRORS_SCHEMA), [], 0, state)
    finally:
        connection.close()
    table = pa.Table.from_pylist(rows, schema=contract.ERRORS_SCHEMA)
    return Batch(table, rejects, skipped, {"inode": inode, "last_ids": last_ids})


def raw_row(table: str, record: dict) -> bytes:
    """The row as it is quarantined and hashed into event_id: JSON with the table name, blobs as hex."""
    values = {name: value.hex() if isinstance(value, bytes) else value for name, value in record.items()}
    return json.dumps({"table": table, **values}, sort_keys=True, separators=(",", ":")).encode()


def map_row(
    table: str, record: dict, identity: HostIdentity, devices: Mapping[str, Device], row_id: bytes
) -> dict | None:
    """One rasdaemon row as an errors row; None for an aer_event of a device that is not a CXL memory device."""
    ts = text_time("timestamp", record.get("timestamp"))
    if table == AER_TABLE:
        return _aer_row(record, identity, devices, ts, row_id)
    return map_record(trace_record(table, record), identity, ts, row_id)


def trace_record(table: str, record: dict) -> dict:
    """A CXL table's row in the shape of the trace event it stores (cxl_monitor's input)."""
    trace = {"system": "cxl", "event": CXL_TABLES[table], "validity_flags": ALL_VALID}
    for name, value in record.items():
        if name in ("id", "timestamp"):
            continue
        if name == "log_type":
            trace["log"] = _log_code(value)
        elif name in TEXT_TIMES:
            trace[TEXT_TIMES[name]] = text_time(name, value)
        elif type(value) is int and value < 0 and name not in SIGNED_COLUMNS:
            trace[RENAMED.get(name, name)] = value + 2 ** (64 if name in INT64_COLUMNS else 32)
        else:
            trace[RENAMED.get(name, name)] = value
    return trace


def text_time(name: str, value: object) -> int:
    """rasdaemon's "%Y-%m-%d %H:%M:%S %z" text as nanoseconds since 1970 (its epoch text for 0 gives 0)."""
    try:
        return int(datetime.strptime(value, TIME_FORMAT).timestamp()) * 1_000_000_000  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise Unmappable(f"bad_field: {name} must be a time like '2025-12-04 18:00:00 +0000', got {value!r}") from None


def _log_code(value: object) -> int:
    if value not in contract.LOG_TYPES:
        raise Unmappable(f"bad_field: log_type must be one of {', '.join(contract.LOG_TYPES)}, got {value!r}")
    return contract.LOG_TYPES.index(value)  # type: ignore[arg-type]


def _aer_row(
    record: dict, identity: HostIdentity, devices: Mapping[str, Device], ts: int, row_id: bytes
) -> dict | None:
    dev_name, err_type, message = record.get("dev_name"), record.get("err_type"), record.get("err_msg")
    if not isinstance(dev_name, str) or not isinstance(message, str) or err_type not in AER_SEVERITIES:
        raise Unmappable(f"bad_field: aer_event needs dev_name, err_msg text and a known err_type, got {err_type!r}")
    device = devices.get(dev_name)
    if device is None:
        return None
    severity = AER_SEVERITIES[err_type]
    corrected = severity == "corrected"
    known = AER_CORRECTABLE_NAMES if corrected else AER_UNCORRECTABLE_NAMES
    kernel_names = contract.AER_CORRECTABLE_BITS if corrected else contract.AER_UNCORRECTABLE_BITS
    status = 0
    listed = message.split(" TLP Header:")[0]
    for name in listed.split(", ") if listed else []:
        unnamed = UNNAMED_BIT.fullmatch(name)
        bit = int(unnamed.group(1)) if unnamed else known.get(name)
        if bit is None or bit > 31:
            raise Unmappable(f"bad_field: err_msg names {name!r}, not an AER {err_type} status bit")
        status |= 1 << bit
    row = base_row(identity, ts, row_id, device.controller_id, device.memdev, dev_name)
    row.update(
        record_type="aer_event",
        severity=severity,
        status=status,
        error_names=[name for bit, name in kernel_names.items() if status >> bit & 1],
    )
    return row
