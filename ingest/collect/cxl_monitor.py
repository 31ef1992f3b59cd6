"""`cxl monitor` (ndctl) JSON lines → the contract's error rows (leo.errors), or rejects with the raw line.

ndctl's cxl/event_trace.c writes one JSON object per kernel trace event: "system" ("cxl"), "event" (the
tracepoint name), "timestamp" (the trace clock, not wall time), then every field of the tracepoint under its
drivers/cxl/core/trace.h name at the top level (strings, numbers, uuids as strings, arrays as number lists).
Objects that nest the fields under "data" or "fields" are read the same way.

Row rules (telemetry.md §2, §6.1): controller_id is the device serial as 0x-hex, pci_bdf the trace's "host" (the
memdev's parent PCI device), host/rack/region the collecting host's; ts is when the collector read the line,
device_ts the record header's timestamp (null when the device reports 0). Fields the validity flags mark invalid
are null. event_id is derived from the host and the raw line, so a line read twice gets the same id.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import pyarrow as pa

from ingest import contract

# Tracepoint name → record_type.
RECORD_TYPES = {
    "cxl_general_media": "general_media",
    "cxl_dram": "dram",
    "cxl_memory_module": "memory_module",
    "cxl_aer_uncorrectable_error": "cxl_aer_ue",
    "cxl_aer_correctable_error": "cxl_aer_ce",
    "cxl_poison": "poison",
    "cxl_overflow": "overflow",
    "cxl_generic_event": "generic",
}
# Events read from the device's event logs carry the log (0 Informational .. 3 Fatal) and the common header.
LOGGED_EVENTS = ("cxl_general_media", "cxl_dram", "cxl_memory_module", "cxl_overflow", "cxl_generic_event")
HEADER_EVENTS = ("cxl_general_media", "cxl_dram", "cxl_memory_module", "cxl_generic_event")
# validity_flags bit of each optional column (trace.h CXL_GMER_VALID_*, CXL_DER_VALID_*).
VALID_BITS = {
    "cxl_general_media": {"channel": 0, "rank": 1},
    "cxl_dram": {"channel": 0, "rank": 1, "nibble_mask": 2, "bank_group": 3, "bank": 4, "row": 5, "column": 6},
}
NO_HPA = 2**64 - 1  # the kernel's ULLONG_MAX: no region maps this DPA
LIFE_USED_NOT_IMPLEMENTED = 0xFF
TEMPERATURE_NOT_IMPLEMENTED = (-1, 0xFFFF)  # 0xFFFF read as s16 (trace.h) or as u16


@dataclass(frozen=True)
class Reject:
    """A line that cannot become a row: quarantined with its raw bytes and this reason."""

    raw: bytes
    reason: str


@dataclass(frozen=True)
class HostIdentity:
    """Where the rows come from: the collecting host and its place in the fleet."""

    host: str
    rack: str
    region: str


class Unmappable(ValueError):
    """A record that breaks the documented format; the message is the quarantine reason."""


def map_lines(lines: Iterable[bytes], identity: HostIdentity, received_ns: int) -> tuple[pa.Table, list[Reject]]:
    """Every line as an errors row (ERRORS_SCHEMA) or a Reject; blank lines are skipped. `received_ns`: ts."""
    rows, rejects = [], []
    for raw in lines:
        if not raw.strip():
            continue
        try:
            rows.append(map_record(parse(raw), identity, received_ns, event_id(identity.host, raw)))
        except Unmappable as problem:
            rejects.append(Reject(raw, str(problem)))
    return pa.Table.from_pylist(rows, schema=contract.ERRORS_SCHEMA), rejects


def parse(raw: bytes) -> dict:
    try:
        record = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise Unmappable(f"bad_json: {exc}") from None
    if not isinstance(record, dict):
        raise Unmappable("bad_json: not a JSON object")
    nested = record.get("data", record.get("fields"))
    return {**record, **nested} if isinstance(nested, dict) else record


def event_id(host: str, raw: bytes) -> bytes:
    return hashlib.blake2b(host.encode() + b"\0" + raw.strip(), digest_size=16).digest()


def map_record(record: dict, identity: HostIdentity, received_ns: int, row_id: bytes) -> dict:
    """One trace event as an errors row; Unmappable says why it cannot be one."""
    event = record.get("event")
    if record.get("system", "cxl") != "cxl" or event not in RECORD_TYPES:
        raise Unmappable(f"unsupported_event: {record.get('system')!r}/{event!r}")
    field = _Fields(record)
    controller_id = f"0x{field.unsigned('serial', 64):016x}"
    row = base_row(identity, received_ns, row_id, controller_id, field.text("memdev"), field.text("host"))
    row["record_type"] = RECORD_TYPES[event]
    if event in LOGGED_EVENTS:
        log = field.unsigned("log", 8)
        if log >= len(contract.LOG_TYPES):
            raise Unmappable(f"bad_field: log {log} is not 0-{len(contract.LOG_TYPES) - 1}")
        row["log_type"] = contract.LOG_TYPES[log]
    if event in HEADER_EVENTS:
        row["hdr_flags"] = field.unsigned("hdr_flags", 24)
        row["device_ts"] = field.timestamp("hdr_timestamp")
    row.update(_EVENT_COLUMNS[event](field))
    return row


def base_row(identity: HostIdentity, ts_ns: int, row_id: bytes, controller_id: str, memdev: str, pci_bdf: str) -> dict:
    """The columns every collected errors row fills the same way; the rest start null (hdr_flags 0, epoch 0)."""
    row = dict.fromkeys(contract.ERRORS_SCHEMA.names)
    row.update(
        event_id=row_id,
        ts=ts_ns,
        controller_id=controller_id,
        host=identity.host,
        rack=identity.rack,
        region=identity.region,
        memdev=memdev,
        pci_bdf=pci_bdf,
        hdr_flags=0,
        counter_epoch=0,
    )
    return row


def _media(field: _Fields, type_names: tuple[str, ...], count_field: str) -> dict:
    """General Media and DRAM records: address, descriptor, enums, the validated location, threshold count."""
    descriptor = field.unsigned("descriptor", 8)
    uncorrectable = descriptor & contract.DESCRIPTOR_UNCORRECTABLE_EVENT
    columns = {
        "severity": "uncorrected_nonfatal" if uncorrectable else "corrected",
        "dpa": field.unsigned("dpa", 64),
        "hpa": field.hpa(),
        "descriptor": descriptor,
        "mem_event_type": field.enum("type", type_names),
        "transaction_type": field.enum("transaction_type", contract.TRANSACTION_TYPES),
        "sub_type": field.unsigned("sub_type", 8, default=0),
    }
    valid = field.unsigned("validity_flags", 16)
    widths = {"channel": 8, "rank": 8, "nibble_mask": 24, "bank_group": 8, "bank": 8, "row": 24, "column": 16}
    for name, bit in VALID_BITS[field.event].items():
        columns[name] = field.unsigned(name, widths[name]) if valid >> bit & 1 else None
    if descriptor & contract.DESCRIPTOR_THRESHOLD_EVENT:
        columns["cme_count"] = field.unsigned(count_field, 24, default=0)
    return columns


def _memory_module(field: _Fields) -> dict:
    life_used = field.unsigned("life_used", 8)
    temperature = field.signed("device_temp", 16)
    return {
        "severity": "info",
        "mem_event_type": field.enum("event_type", contract.MEMORY_MODULE_EVENT_TYPES),
        "sub_type": field.unsigned("event_sub_type", 8, default=0),
        "health_status": field.unsigned("health_status", 8),
        "media_status": field.enum("media_status", contract.MEDIA_STATUSES),
        "additional_status": field.unsigned("add_status", 8),
        "life_used_pct": None if life_used == LIFE_USED_NOT_IMPLEMENTED else life_used,
        "device_temp_c": None if temperature in TEMPERATURE_NOT_IMPLEMENTED else temperature,
        "dirty_shutdown_cnt": field.unsigned("dirty_shutdown_cnt", 32),
        "cor_vol_err_cnt": field.unsigned("cor_vol_err_cnt", 32),
        "cor_per_err_cnt": field.unsigned("cor_per_err_cnt", 32),
    }


def _ras(field: _Fields, bits: dict[int, str], severity: str, first_error: bool) -> dict:
    status = field.unsigned("status", 32)
    return {
        "severity": severity,
        "status": status,
        "first_error": field.unsigned("first_error", 32) if first_error else None,
        "error_names": [name for bit, name in bits.items() if status >> bit & 1],
    }


def _overflow(field: _Fields) -> dict:
    return {
        "severity": "info",
        "overflow_count": field.unsigned("count", 16),
        "overflow_first_ts": field.timestamp("first_ts"),
        "overflow_last_ts": field.timestamp("last_ts"),
    }


def _poison(field: _Fields) -> dict:
    return {"severity": "uncorrected_nonfatal", "dpa": field.unsigned("dpa", 64), "hpa": field.hpa()}


_EVENT_COLUMNS: dict[str, Callable[[_Fields], dict]] = {
    "cxl_general_media": lambda f: _media(f, contract.GENERAL_MEDIA_TYPES, "cme_count"),
    "cxl_dram": lambda f: _media(f, contract.DRAM_TYPES, "cvme_count"),
    "cxl_memory_module": _memory_module,
    "cxl_aer_uncorrectable_error": lambda f: _ras(f, contract.CXL_UE_BITS, "uncorrected_nonfatal", True),
    "cxl_aer_correctable_error": lambda f: _ras(f, contract.CXL_CE_BITS, "corrected", False),
    "cxl_poison": _poison,
    "cxl_overflow": _overflow,
    "cxl_generic_event": lambda f: {"severity": "info"},
}


class _Fields:
    """Typed access to one record's fields; every breach of the documented types raises Unmappable."""

    def __init__(self, record: dict) -> None:
        self.record = record
        self.event = record["event"]

    def _get(self, name: str, default: object = None) -> object:
        if name not in self.record:
            if default is not None:
                return default
            raise Unmappable(f"missing_field: {self.event} has no {name!r}")
        return self.record[name]

    def text(self, name: str) -> str:
        value = self._get(name)
        if not isinstance(value, str) or not value:
            raise Unmappable(f"bad_field: {name} must be a non-empty string, got {value!r}")
        return value

    def unsigned(self, name: str, bits: int, default: int | None = None) -> int:
        value = self._get(name, default)
        if type(value) is not int or not 0 <= value < 2**bits:
            raise Unmappable(f"bad_field: {name} must be an unsigned {bits}-bit integer, got {value!r}")
        return value

    def signed(self, name: str, bits: int) -> int:
        value = self._get(name)
        if type(value) is not int or not -(2 ** (bits - 1)) <= value < 2**bits:
            raise Unmappable(f"bad_field: {name} must be a {bits}-bit integer, got {value!r}")
        return value

    def enum(self, name: str, names: tuple[str, ...]) -> int:
        value = self.unsigned(name, 8)
        if value >= len(names):
            raise Unmappable(f"bad_field: {name} {value} is not a known code (0-{len(names) - 1})")
        return value

    def timestamp(self, name: str) -> int | None:
        """Nanoseconds since 1970 (CXL r3.0 §8.2.9.4), kept as an integer; 0 means the device clock was never set."""
        nanoseconds = self.unsigned(name, 63)
        return nanoseconds or None

    def hpa(self) -> int | None:
        hpa = self.unsigned("hpa", 64, default=NO_HPA)
        return None if hpa == NO_HPA else hpa
