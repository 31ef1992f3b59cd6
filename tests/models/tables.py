"""Hand-built contract tables for unit tests: name only the columns a test is about, the rest get plain defaults."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pyarrow as pa

from ingest.contract import ERRORS_SCHEMA, INVENTORY_SCHEMA, LINK_SCHEMA, TRUTH_FAULTS_SCHEMA, conform

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


_ERRORS_DEFAULTS = {
    "device_ts": None,
    "host": "host-0",
    "rack": "rack-0",
    "region": "r1",
    "memdev": "mem0",
    "pci_bdf": "0000:38:00.0",
    "record_type": "health_snapshot",
    "severity": "info",
    "hdr_flags": 0,
    "health_status": 0,
    "media_status": 0,
    "additional_status": 0,
    "device_temp_c": 45,
    "cor_vol_err_cnt": 0,
    "cor_per_err_cnt": 0,
    "dirty_shutdown_cnt": 0,
    "counter_epoch": 0,
}
_LINK_DEFAULTS = {
    "host": "host-0",
    "counter_epoch": 0,
    "port": "host_rp",
    "event": "snapshot",
    "ltssm_state": "L0",
    "cur_speed_gts": 32.0,
    "max_speed_gts": 32.0,
    "cur_width": 16,
    "max_width": 16,
    "lnksta_flags": 1 << 13,
    "flit_mode": False,
    "aer_cor_total": 0,
    "rx_err": 0,
    "bad_tlp": 0,
    "bad_dllp": 0,
    "replay_rollover": 0,
    "replay_timeout": 0,
    "cxl_crc_thresh_hits": 0,
    "cxl_retry_thresh_hits": 0,
    "reinit_thresh_hits": 0,
    "link_down_count": 0,
    "recovery_entries": 0,
}
_INVENTORY_DEFAULTS = {
    "region": "r1",
    "rack": "rack-0",
    "host": "host-0",
    "memdev": "mem0",
    "pci_bdf": "0000:38:00.0",
    "sku": "aic",
    "capacity_gb": 512,
    "dram_type": "DDR5-5600",
    "dimm_count": 8,
    "max_link_width": 16,
    "max_link_speed_gts": 32.0,
    "firmware_version": "1.0.0",
    "deployed_at": T0 - timedelta(days=200),
}


def _build(schema: pa.Schema, defaults: dict, rows: list[dict]) -> pa.Table:
    filled = [{**defaults, **row} for row in rows]
    columns = {
        field.name: pa.array([r.get(field.name) for r in filled], field.type.value_type)
        if pa.types.is_dictionary(field.type)
        else pa.array([r.get(field.name) for r in filled], field.type)
        for field in schema
    }
    table = pa.table(
        {
            name: col.dictionary_encode() if pa.types.is_dictionary(schema.field(name).type) else col
            for name, col in columns.items()
        }
    )
    return conform(table, schema)


def errors(*rows: dict) -> pa.Table:
    return _build(ERRORS_SCHEMA, _ERRORS_DEFAULTS, [{"event_id": uuid.uuid4().bytes, **r} for r in rows])


def link(*rows: dict) -> pa.Table:
    return _build(LINK_SCHEMA, _LINK_DEFAULTS, list(rows))


def inventory(*rows: dict) -> pa.Table:
    return _build(INVENTORY_SCHEMA, _INVENTORY_DEFAULTS, list(rows))


def truth(*rows: dict) -> pa.Table:
    return _build(TRUTH_FAULTS_SCHEMA, {"end_ts": None, "precursor_onset_ts": None, "details": "{}"}, list(rows))
