"""The telemetry contract: topic names, Arrow schemas, enumerations and the latency histogram layout.

One module owns these facts (architecture.md). Field names, enum values and bit positions follow the public
CXL/PCIe implementations summarised in ../shared/docs/telemetry.md (Linux trace events, rasdaemon, ndctl, libcxlmi).
Schemas carry `SCHEMA_VERSION` in their metadata and in the Kafka headers; a consumer rejects versions it does
not know rather than guessing.
"""

from __future__ import annotations

import math
from pathlib import Path

import pyarrow as pa

SCHEMA_VERSION = 1

TOPIC_ERRORS = "leo.errors"
TOPIC_LINK = "leo.link"
TOPIC_LATENCY = "leo.latency"
# The fleet tool's device inventory travels on its own topic, keyed by controller, so the loader needs no
# side channel for it. Ground truth never travels on any topic.
TOPIC_INVENTORY = "leo.inventory"

# Kafka header names and the two accepted payload encodings.
HEADER_SCHEMA = "leo-schema"
HEADER_SCHEMA_VERSION = "leo-schema-version"
HEADER_CONTENT_TYPE = "content-type"
CONTENT_TYPE_ARROW = "application/vnd.apache.arrow.stream"
CONTENT_TYPE_JSONL = "application/x-ndjson"
# Input a producer (a host collector) could not map to contract rows, forwarded as raw bytes with the reason in
# HEADER_REJECT_REASON, so the loader quarantines it instead of the producer dropping it.
CONTENT_TYPE_REJECTED = "application/vnd.leo.rejected"
HEADER_REJECT_REASON = "leo-reject-reason"

# ---------------------------------------------------------------------------------------------------------
# Enumerations (telemetry.md §2–§4). Order matters where the value is an on-the-wire code.
# ---------------------------------------------------------------------------------------------------------

RECORD_TYPES = (
    "aer_event",
    "cxl_aer_ce",
    "cxl_aer_ue",
    "general_media",
    "dram",
    "memory_module",
    "poison",
    "overflow",
    "generic",
    "health_snapshot",
    "controller_reset",
)
LOG_TYPES = ("Informational", "Warning", "Failure", "Fatal")
SEVERITIES = ("corrected", "uncorrected_nonfatal", "uncorrected_fatal", "info")
RESET_KINDS = ("warm", "cold", "hot", "cxl_reset", "flr", "sbr", "fw_activate")

# PCIe AER status bits (bit -> kernel name), telemetry.md §2.8.
AER_CORRECTABLE_BITS = {
    0: "RxErr",
    6: "BadTLP",
    7: "BadDLLP",
    8: "Rollover",
    12: "Timeout",
    13: "NonFatalErr",
    14: "CorrIntErr",
    15: "HeaderOF",
}
AER_UNCORRECTABLE_BITS = {
    0: "Undefined",
    4: "DLP",
    5: "SDES",
    12: "TLP",
    13: "FCP",
    14: "CmpltTO",
    15: "CmpltAbrt",
    16: "UnxCmplt",
    17: "RxOF",
    18: "MalfTLP",
    19: "ECRC",
    20: "UnsupReq",
    21: "ACSViol",
    22: "UncorrIntErr",
    23: "MCBlockedTLP",
    24: "AtomicOpEgressBlocked",
    25: "TLPPrefixBlocked",
    26: "PoisonedTLPEgressBlocked",
}
# CXL RAS capability status bits, telemetry.md §2.2. Cache bits stay 0 on a Type-3 device.
CXL_CE_BITS = {
    0: "Cache Data ECC Error",
    1: "Memory Data ECC Error",
    2: "CRC Threshold Hit",
    3: "Retry Threshold",
    4: "Received Cache Poison From Peer",
    5: "Received Memory Poison From Peer",
    6: "Received Error From Physical Layer",
}
CXL_UE_BITS = {
    0: "Cache Data Parity Error",
    1: "Cache Address Parity Error",
    2: "Cache Byte Enable Parity Error",
    3: "Cache Data ECC Error",
    4: "Memory Data Parity Error",
    5: "Memory Address Parity Error",
    6: "Memory Byte Enable Parity Error",
    7: "Memory Data ECC Error",
    8: "REINIT Threshold Hit",
    9: "Received Unrecognized Encoding",
    10: "Received Poison From Peer",
    11: "Receiver Overflow",
    14: "Component Specific Error",
    15: "IDE Tx Error",
    16: "IDE Rx Error",
}

# Event-record header flags (§2.1), General Media / DRAM descriptor bits (§2.3).
HDR_FLAG_PERMANENT_CONDITION = 1 << 2
HDR_FLAG_MAINTENANCE_NEEDED = 1 << 3
HDR_FLAG_PERFORMANCE_DEGRADED = 1 << 4
HDR_FLAG_HARDWARE_REPLACEMENT_NEEDED = 1 << 5
DESCRIPTOR_UNCORRECTABLE_EVENT = 1 << 0
DESCRIPTOR_THRESHOLD_EVENT = 1 << 1
DESCRIPTOR_POISON_LIST_OVERFLOW = 1 << 2

# `type` codes: the General Media and DRAM orders differ (§2.3, §2.4).
GENERAL_MEDIA_TYPES = (
    "ECC Error",
    "Invalid Address",
    "Data Path Error",
    "TE State Violation",
    "Scrub Media ECC Error",
    "Adv Prog CME Counter Expiration",
    "CKID Violation",
)
DRAM_TYPES = (
    "ECC Error",
    "Scrub Media ECC Error",
    "Invalid Address",
    "Data Path Error",
    "TE State Violation",
    "Adv Prog CME Counter Expiration",
    "CKID Violation",
)
TRANSACTION_TYPES = (
    "Unknown",
    "Host Read",
    "Host Write",
    "Host Scan Media",
    "Host Inject Poison",
    "Internal Media Scrub",
    "Internal Media Management",
    "Internal Media Error Check Scrub",
    "Media Initialization",
)
MEMORY_MODULE_EVENT_TYPES = (
    "Health Status Change",
    "Media Status Change",
    "Life Used Change",
    "Temperature Change",
    "Data Path Error",
    "LSA Error",
    "Unrecoverable Internal Sideband Bus Error",
    "Memory Media FRU Error",
    "Power Management Fault",
)
# Get Health Info (§2.6).
HEALTH_STATUS_BITS = {
    0: "MAINTENANCE_NEEDED",
    1: "PERFORMANCE_DEGRADED",
    2: "REPLACEMENT_NEEDED",
    3: "MEM_CAPACITY_DEGRADED",
}
MEDIA_STATUSES = (
    "Normal",
    "Not Ready",
    "Write Persistency Lost",
    "All Data Lost",
    "Write Persistency Loss in Event of Power Loss",
    "Write Persistency Loss in Event of Shutdown",
    "Write Persistency Loss Imminent",
    "All Data Loss in Event of Power Loss",
    "All Data Loss in Event of Shutdown",
    "All Data Loss Imminent",
)

# Link (§3).
LINK_PORTS = ("host_rp", "dev_usp", *(f"head{i}" for i in range(8)))
LINK_EVENTS = (
    "snapshot",
    "link_down",
    "link_up",
    "retrain",
    "speed_change",
    "width_change",
    "surprise_down",
    "dpc_containment",
)
LINK_REASONS = ("retrain", "add_bus", "bwctrl_enable", "bwctrl_irq", "hotplug")
LTSSM_STATES = ("Detect", "Polling", "Configuration", "L0", "Recovery", "L0s", "L1", "L2", "Disabled", "HotReset")
PCIE_SPEEDS_GTS = (2.5, 5.0, 8.0, 16.0, 32.0, 64.0)
PCIE_WIDTHS = (1, 2, 4, 8, 16)
LNKSTA_LT = 1 << 11
LNKSTA_DLLLA = 1 << 13
LNKSTA_LBMS = 1 << 14
LNKSTA_LABS = 1 << 15

# Inventory.
SKUS = ("aic", "e3s")  # add-in card (x16) and E3.S 2T (x8)
DRAM_TYPE = "DDR5-5600"

# Latency.
LATENCY_OPS = ("read", "write")
MEMORY_TIERS = ("cxl", "local_dram")  # local-DRAM rows are the per-host baseline for comparison

# Ground truth (never on a telemetry topic).
# Telemetry confounders: no device fault, but telemetry that looks like one (ingest/sim/confounders.py).
CONFOUNDER_KINDS = (
    "collector_outage",
    "agent_restart",
    "maintenance",
    "clock_step",
    "counter_wrap",
    "counter_width_change",
    "partial_telemetry",
    "firmware_rollout",
)
FAULT_KINDS = (
    "ce_storm",
    "ue",
    "link_degradation",
    "link_retrain",
    "link_downgrade",
    "link_drop",
    "controller_reset",
    "rack_event",
    *CONFOUNDER_KINDS,
)

# ---------------------------------------------------------------------------------------------------------
# The latency histogram: OpenTelemetry base-2 exponential layout at one fleet-wide scale (telemetry.md §6.3).
# ---------------------------------------------------------------------------------------------------------

HISTOGRAM_SCALE = 4
HISTOGRAM_BASE = 2.0 ** (2.0**-HISTOGRAM_SCALE)
# Worst-case relative error of the bucket's geometric midpoint as a quantile estimate: (base - 1) / (base + 1).
HISTOGRAM_MIDPOINT_REL_ERROR = (HISTOGRAM_BASE - 1.0) / (HISTOGRAM_BASE + 1.0)
# 1024 ns sits on a bucket boundary at every scale >= 0, so bucket counts and the exact counter agree.
DEFAULT_SLO_THRESHOLD_NS = 1024


def bucket_index(value_ns: float) -> int:
    """Bucket i covers (base**i, base**(i+1)]: i = ceil(log2(x) * 2**scale) - 1."""
    return math.ceil(math.log2(value_ns) * 2**HISTOGRAM_SCALE) - 1


def bucket_upper_bound(index: int) -> float:
    return HISTOGRAM_BASE ** (index + 1)


# ---------------------------------------------------------------------------------------------------------
# Arrow schemas.
# ---------------------------------------------------------------------------------------------------------

TS = pa.timestamp("ns", tz="UTC")
DICT = pa.dictionary(pa.int16(), pa.string())


def _schema(name: str, fields: list[pa.Field]) -> pa.Schema:
    return pa.schema(fields, metadata={"leo.schema": name, "leo.schema_version": str(SCHEMA_VERSION)})


def _f(name: str, type_: pa.DataType, nullable: bool = False) -> pa.Field:
    return pa.field(name, type_, nullable=nullable)


ERRORS_SCHEMA = _schema(
    TOPIC_ERRORS,
    [
        _f("event_id", pa.binary(16)),
        _f("ts", TS),
        _f("device_ts", TS, nullable=True),
        _f("controller_id", pa.string()),
        _f("host", DICT),
        _f("rack", DICT),
        _f("region", DICT),
        _f("memdev", DICT),
        _f("pci_bdf", DICT),
        _f("record_type", DICT),
        _f("log_type", DICT, nullable=True),
        _f("severity", DICT),
        _f("status", pa.uint32(), nullable=True),
        _f("first_error", pa.uint32(), nullable=True),
        _f("error_names", pa.list_(DICT), nullable=True),
        _f("hdr_flags", pa.uint32()),
        _f("dpa", pa.uint64(), nullable=True),
        _f("hpa", pa.uint64(), nullable=True),
        _f("descriptor", pa.uint8(), nullable=True),
        _f("mem_event_type", pa.uint8(), nullable=True),
        _f("transaction_type", pa.uint8(), nullable=True),
        _f("sub_type", pa.uint8(), nullable=True),
        _f("channel", pa.uint8(), nullable=True),
        _f("rank", pa.uint8(), nullable=True),
        _f("bank_group", pa.uint8(), nullable=True),
        _f("bank", pa.uint8(), nullable=True),
        _f("row", pa.uint32(), nullable=True),
        _f("column", pa.uint16(), nullable=True),
        _f("nibble_mask", pa.uint32(), nullable=True),
        _f("cme_count", pa.uint32(), nullable=True),
        _f("overflow_count", pa.uint16(), nullable=True),
        _f("overflow_first_ts", TS, nullable=True),
        _f("overflow_last_ts", TS, nullable=True),
        _f("health_status", pa.uint8(), nullable=True),
        _f("media_status", pa.uint8(), nullable=True),
        _f("additional_status", pa.uint8(), nullable=True),
        _f("life_used_pct", pa.uint8(), nullable=True),
        _f("device_temp_c", pa.int16(), nullable=True),
        _f("dirty_shutdown_cnt", pa.uint32(), nullable=True),
        _f("cor_vol_err_cnt", pa.uint32(), nullable=True),
        _f("cor_per_err_cnt", pa.uint32(), nullable=True),
        _f("uptime_s", pa.uint32(), nullable=True),
        _f("reset_kind", DICT, nullable=True),
        _f("counter_epoch", pa.uint32()),
    ],
)

LINK_SCHEMA = _schema(
    TOPIC_LINK,
    [
        _f("ts", TS),
        _f("host", DICT),
        _f("controller_id", pa.string()),
        _f("counter_epoch", pa.uint32()),
        _f("port", DICT),
        _f("event", DICT),
        _f("reason", DICT, nullable=True),
        _f("ltssm_state", DICT),
        _f("cur_speed_gts", pa.float32()),
        _f("max_speed_gts", pa.float32()),
        _f("cur_width", pa.uint8()),
        _f("max_width", pa.uint8()),
        _f("lnksta_flags", pa.uint16()),
        _f("flit_mode", pa.bool_()),
        _f("down_ms", pa.uint32(), nullable=True),
        _f("aer_cor_total", pa.uint64()),
        _f("rx_err", pa.uint64()),
        _f("bad_tlp", pa.uint64()),
        _f("bad_dllp", pa.uint64()),
        _f("replay_rollover", pa.uint64()),
        _f("replay_timeout", pa.uint64()),
        _f("cxl_crc_thresh_hits", pa.uint32()),
        _f("cxl_retry_thresh_hits", pa.uint32()),
        _f("reinit_thresh_hits", pa.uint32()),
        _f("link_down_count", pa.uint32()),
        _f("recovery_entries", pa.uint32()),
    ],
)

LATENCY_SCHEMA = _schema(
    TOPIC_LATENCY,
    [
        _f("window_start", TS),
        _f("window_s", pa.uint16()),
        _f("host", DICT),
        _f("controller_id", pa.string()),
        _f("memory_tier", DICT),
        _f("head_or_ld", pa.uint8()),
        _f("op", DICT),
        _f("scale", pa.int8()),
        _f("bucket_offset", pa.int32()),
        _f("bucket_counts", pa.list_(pa.uint32())),
        _f("count", pa.uint64()),
        _f("sum_ns", pa.float64()),
        _f("min_ns", pa.uint32()),
        _f("max_ns", pa.uint32()),
        _f("slo_threshold_ns", pa.uint32()),
        _f("over_slo", pa.uint64()),
        _f("rd_bytes", pa.uint64()),
        _f("wr_bytes", pa.uint64()),
        _f("backpressure_avg_pct", pa.uint8()),
    ],
)

INVENTORY_SCHEMA = _schema(
    TOPIC_INVENTORY,
    [
        _f("controller_id", pa.string()),
        _f("region", DICT),
        _f("rack", DICT),
        _f("host", DICT),
        _f("memdev", DICT),
        _f("pci_bdf", DICT),
        _f("sku", DICT),
        _f("capacity_gb", pa.uint32()),
        _f("dram_type", DICT),
        _f("dimm_count", pa.uint8()),
        _f("max_link_width", pa.uint8()),
        _f("max_link_speed_gts", pa.float32()),
        _f("firmware_version", DICT),
        _f("deployed_at", TS),
    ],
)

TRUTH_FAULTS_SCHEMA = _schema(
    "truth_faults",
    [
        _f("controller_id", pa.string()),
        _f("kind", DICT),
        _f("onset_ts", TS),
        # Null for faults that last to the end of the simulated span. (Not "end": a reserved word in SQL.)
        _f("end_ts", TS, nullable=True),
        # First observable precursor (rising CEs, link-error trend); null when the fault came without warning.
        _f("precursor_onset_ts", TS, nullable=True),
        # JSON object: e.g. {"reset_kind": "warm", "silent": true} or {"from_width": 16, "to_width": 8}.
        _f("details", pa.string()),
    ],
)

# Declared maintenance windows (the change calendar): a reset inside one on its host is planned, not a failure.
MAINTENANCE_SCHEMA = _schema(
    "maintenance",
    [
        _f("host", pa.string()),
        _f("start_ts", TS),
        _f("end_ts", TS),
        _f("reason", pa.string()),  # e.g. "host_reboot", "fw_activate"
    ],
)

# Debug stream of raw per-access samples: only the simulator's test mode writes it (telemetry.md §6.3).
LATENCY_SAMPLES_SCHEMA = _schema(
    "latency_samples",
    [
        _f("window_start", TS),
        _f("controller_id", pa.string()),
        _f("op", DICT),
        _f("latency_ns", pa.float64()),
    ],
)

TELEMETRY_SCHEMAS: dict[str, pa.Schema] = {
    TOPIC_ERRORS: ERRORS_SCHEMA,
    TOPIC_LINK: LINK_SCHEMA,
    TOPIC_LATENCY: LATENCY_SCHEMA,
    TOPIC_INVENTORY: INVENTORY_SCHEMA,
}

# Name of each stream's raw table in the lake and file stem in a Parquet run directory.
TABLE_NAMES: dict[str, str] = {
    TOPIC_ERRORS: "errors",
    TOPIC_LINK: "link",
    TOPIC_LATENCY: "latency",
    TOPIC_INVENTORY: "inventory",
}

# The column that places each telemetry stream's rows in time (and in an hourly partition).
TIME_COLUMNS: dict[str, str] = {TOPIC_ERRORS: "ts", TOPIC_LINK: "ts", TOPIC_LATENCY: "window_start"}


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Cast `table` to `schema` exactly (names, order, types, nullability); raise ValueError on any mismatch.

    Used by producers before sending and by the loader on receipt, so both sides enforce one definition.
    """
    names = table.schema.names
    if names != schema.names:
        missing = [n for n in schema.names if n not in names]
        extra = [n for n in names if n not in schema.names]
        raise ValueError(
            f"columns differ from {schema.metadata[b'leo.schema'].decode()}: missing={missing} extra={extra}"
        )
    for field in schema:
        column = table.column(field.name)
        if not field.nullable and column.null_count:
            raise ValueError(f"column {field.name!r} has {column.null_count} nulls but is not nullable")
    try:
        return table.cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        raise ValueError(f"column types differ from the contract: {exc}") from exc


# The simulator's run directory (`leo-fleet simulate --out DIR`, sample_data/): one Parquet file per table (errors,
# link, latency, inventory, truth_faults; latency_samples in raw-samples mode) and a JSON description of the run.
RUN_DESCRIPTION = "run.json"


def run_table_file(run_dir: Path, table: str) -> Path:
    """Where a run directory keeps `table`: written by ingest.sim.parquet_sink, read by `leo-fleet load`
    (ingest.lake.loader) and by the offline evaluation (models.features, models.holdout)."""
    return Path(run_dir) / f"{table}.parquet"
