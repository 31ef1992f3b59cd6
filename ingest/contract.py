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
# Declared maintenance windows (the change calendar), keyed by controller like the inventory: the detectors read
# them to tell a planned reset from a failure.
TOPIC_MAINTENANCE = "leo.maintenance"
# The pilot's job records (docs/pilot.md): one row per job when it ends, on CXL-expanded and baseline hosts.
TOPIC_JOBS = "leo.jobs"

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

# Jobs (the pilot, docs/pilot.md). A job's memory_tier is MEMORY_TIERS: cxl = CXL-expanded, local_dram = local only.
JOB_WORKLOADS = ("in_memory_db", "llm_kv_cache", "analytics")
JOB_OUTCOMES = ("completed", "failed", "killed_reset", "killed_link_drop")

# Ground truth (never on a telemetry topic).
# Delivery confounders (ingest/kafka/delivery_faults.py): not device faults, the telemetry's way to the lake.
DELIVERY_FAULT_KINDS = ("late_delivery", "duplicate_delivery")
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
    *DELIVERY_FAULT_KINDS,
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


# The field-metadata key of a column's description: what the Dagster catalog shows beside the column.
DESCRIPTION = b"description"


def described(name: str, type_: pa.DataType, description: str, *, nullable: bool = True) -> pa.Field:
    """A schema field that says what it holds, written once where the schema is defined."""
    return pa.field(name, type_, nullable=nullable, metadata={DESCRIPTION: description})


def _schema(name: str, fields: list[pa.Field]) -> pa.Schema:
    return pa.schema(fields, metadata={"leo.schema": name, "leo.schema_version": str(SCHEMA_VERSION)})


ERRORS_SCHEMA = _schema(
    TOPIC_ERRORS,
    [
        described("event_id", pa.binary(16), "unique id of the event (16-byte uuid)", nullable=False),
        described("ts", TS, "when the host received the record (UTC)", nullable=False),
        described(
            "device_ts",
            TS,
            "the device's own timestamp of the record (UTC); NULL when the device reports 0 (clock never set)",
        ),
        described("controller_id", pa.string(), "the memory controller: its device serial in hex", nullable=False),
        described("host", DICT, "the host the controller is attached to", nullable=False),
        described("rack", DICT, "the rack of the host", nullable=False),
        described("region", DICT, "the region (site) of the rack", nullable=False),
        described("memdev", DICT, "the kernel's CXL memory device name on the host, e.g. mem0", nullable=False),
        described("pci_bdf", DICT, "the controller's PCI address (domain:bus:device.function)", nullable=False),
        described(
            "record_type",
            DICT,
            "kind of record: aer_event, cxl_aer_ce/ue, general_media, dram, memory_module, poison, overflow, "
            "generic, health_snapshot or controller_reset",
            nullable=False,
        ),
        described(
            "log_type",
            DICT,
            "the CXL event log it came from: Informational, Warning, Failure or Fatal; NULL for records not from an "
            "event log",
        ),
        described("severity", DICT, "corrected, uncorrected_nonfatal, uncorrected_fatal or info", nullable=False),
        described("status", pa.uint32(), "AER or CXL RAS status bitmask; NULL when the record has none"),
        described(
            "first_error", pa.uint32(), "bit number of the first uncorrectable error in status; NULL when not reported"
        ),
        described(
            "error_names",
            pa.list_(DICT),
            "the names of the bits set in status, e.g. Memory Data ECC Error; NULL when status is NULL",
        ),
        described(
            "hdr_flags",
            pa.uint32(),
            "CXL event-record header flags (bit2 permanent, bit3 maintenance needed, bit4 performance degraded, bit5 "
            "replacement needed)",
            nullable=False,
        ),
        described(
            "dpa", pa.uint64(), "device physical address of the error, 64-byte aligned; NULL when not a media event"
        ),
        described("hpa", pa.uint64(), "host physical address the kernel translated dpa to; NULL when not translated"),
        described(
            "descriptor",
            pa.uint8(),
            "media event descriptor bits: bit0 uncorrectable, bit1 threshold event, bit2 poison-list overflow; NULL "
            "when not a media event",
        ),
        described(
            "mem_event_type",
            pa.uint8(),
            "media event type code (General Media and DRAM order differ); NULL when not a media event",
        ),
        described(
            "transaction_type",
            pa.uint8(),
            "what the access was: 0 unknown, 1 host read, 2 host write, 3 scan media, 4 inject poison, 5-7 internal "
            "scrub/management, 8 media init; NULL when not a media event",
        ),
        described(
            "sub_type",
            pa.uint8(),
            "media event sub-type code (0 not reported, 1-5 datapath/training/CRC errors); NULL when not reported",
        ),
        described("channel", pa.uint8(), "DRAM channel of the error; NULL when the device did not report it"),
        described("rank", pa.uint8(), "DRAM rank of the error; NULL when the device did not report it"),
        described("bank_group", pa.uint8(), "DRAM bank group of the error; NULL when the device did not report it"),
        described("bank", pa.uint8(), "DRAM bank of the error; NULL when the device did not report it"),
        described("row", pa.uint32(), "DRAM row of the error; NULL when the device did not report it"),
        described("column", pa.uint16(), "DRAM column of the error; NULL when the device did not report it"),
        described(
            "nibble_mask", pa.uint32(), "the DRAM nibbles in error (bitmask); NULL when the device did not report it"
        ),
        described(
            "cme_count", pa.uint32(), "corrected memory errors a threshold event carries, count; NULL on other records"
        ),
        described(
            "overflow_count",
            pa.uint16(),
            "events the device dropped while its log was full, count; NULL except on overflow records",
        ),
        described("overflow_first_ts", TS, "first dropped event's time (UTC); NULL except on overflow records"),
        described("overflow_last_ts", TS, "last dropped event's time (UTC); NULL except on overflow records"),
        described(
            "health_status",
            pa.uint8(),
            "health bits: bit0 maintenance needed, bit1 performance degraded, bit2 replacement needed, bit3 capacity "
            "degraded; NULL except on health snapshot and memory_module records",
        ),
        described(
            "media_status",
            pa.uint8(),
            "media status code (0 normal ... 9 all data loss imminent); NULL except on health snapshot and "
            "memory_module records",
        ),
        described(
            "additional_status",
            pa.uint8(),
            "alarm bits: life used, temperature, corrected-count alarms; NULL except on health snapshot and "
            "memory_module records",
        ),
        described("life_used_pct", pa.uint8(), "device life used, percent; NULL when not reported or not implemented"),
        described(
            "device_temp_c", pa.int16(), "device temperature, degrees C; NULL when not reported or not implemented"
        ),
        described(
            "dirty_shutdown_cnt",
            pa.uint32(),
            "dirty shutdowns, cumulative count in counter_epoch; NULL when not reported",
        ),
        described(
            "cor_vol_err_cnt",
            pa.uint32(),
            "corrected volatile memory errors, cumulative count in counter_epoch; NULL when not reported",
        ),
        described(
            "cor_per_err_cnt",
            pa.uint32(),
            "corrected persistent memory errors, cumulative count in counter_epoch; NULL when not reported",
        ),
        described("uptime_s", pa.uint32(), "controller uptime since its last reset, s; NULL when not reported"),
        described(
            "reset_kind",
            DICT,
            "kind of reset on controller_reset records: warm, cold, hot, cxl_reset, flr, sbr, fw_activate; NULL on "
            "other records",
        ),
        described(
            "counter_epoch",
            pa.uint32(),
            "counter epoch: +1 at each controller reset or re-enumeration; cumulative counts restart with it",
            nullable=False,
        ),
    ],
)

LINK_SCHEMA = _schema(
    TOPIC_LINK,
    [
        described("ts", TS, "when the host recorded the state (UTC)", nullable=False),
        described("host", DICT, "the host the controller is attached to", nullable=False),
        described("controller_id", pa.string(), "the memory controller: its device serial in hex", nullable=False),
        described(
            "counter_epoch",
            pa.uint32(),
            "counter epoch: +1 at each controller reset or re-enumeration; cumulative counts restart with it",
            nullable=False,
        ),
        described(
            "port",
            DICT,
            "the port observed: host_rp (host root port), dev_usp (device upstream port) or headN",
            nullable=False,
        ),
        described(
            "event",
            DICT,
            "snapshot, link_down, link_up, retrain, speed_change, width_change, surprise_down or dpc_containment",
            nullable=False,
        ),
        described(
            "reason",
            DICT,
            "the kernel's reason for a link event: retrain, add_bus, bwctrl_enable, bwctrl_irq, hotplug; NULL when "
            "none",
        ),
        described(
            "ltssm_state",
            DICT,
            "link training state: L0 normal, Recovery transient, Detect/Polling while down, Disabled, HotReset",
            nullable=False,
        ),
        described("cur_speed_gts", pa.float32(), "current link speed, GT/s (32 for Gen5)", nullable=False),
        described("max_speed_gts", pa.float32(), "maximum link speed, GT/s", nullable=False),
        described("cur_width", pa.uint8(), "current link width, lanes", nullable=False),
        described("max_width", pa.uint8(), "maximum link width, lanes", nullable=False),
        described(
            "lnksta_flags", pa.uint16(), "PCIe Link Status flags: LT, DLLLA, LBMS, LABS (bitmask)", nullable=False
        ),
        described(
            "flit_mode",
            pa.bool_(),
            "whether the link runs in flit mode (false for CXL 2.0 68-byte flits)",
            nullable=False,
        ),
        described("down_ms", pa.uint32(), "length of the outage on link_up events, ms; NULL on other events"),
        described(
            "aer_cor_total", pa.uint64(), "AER correctable errors, cumulative count in counter_epoch", nullable=False
        ),
        described("rx_err", pa.uint64(), "AER Receiver Errors, cumulative count in counter_epoch", nullable=False),
        described("bad_tlp", pa.uint64(), "AER Bad TLP errors, cumulative count in counter_epoch", nullable=False),
        described("bad_dllp", pa.uint64(), "AER Bad DLLP errors, cumulative count in counter_epoch", nullable=False),
        described(
            "replay_rollover",
            pa.uint64(),
            "AER replay-number rollovers, cumulative count in counter_epoch",
            nullable=False,
        ),
        described(
            "replay_timeout",
            pa.uint64(),
            "AER replay timer timeouts, cumulative count in counter_epoch",
            nullable=False,
        ),
        described(
            "cxl_crc_thresh_hits",
            pa.uint32(),
            "CXL CRC threshold hits, cumulative count in counter_epoch",
            nullable=False,
        ),
        described(
            "cxl_retry_thresh_hits",
            pa.uint32(),
            "CXL retry threshold hits, cumulative count in counter_epoch",
            nullable=False,
        ),
        described(
            "reinit_thresh_hits",
            pa.uint32(),
            "CXL REINIT threshold hits, cumulative count in counter_epoch",
            nullable=False,
        ),
        described(
            "link_down_count", pa.uint32(), "link-down events, cumulative count in counter_epoch", nullable=False
        ),
        described(
            "recovery_entries",
            pa.uint32(),
            "entries into LTSSM Recovery, cumulative count in counter_epoch",
            nullable=False,
        ),
    ],
)

LATENCY_SCHEMA = _schema(
    TOPIC_LATENCY,
    [
        described("window_start", TS, "start of the window the histogram covers (UTC)", nullable=False),
        described("window_s", pa.uint16(), "length of the window, seconds", nullable=False),
        described("host", DICT, "the host the controller is attached to", nullable=False),
        described("controller_id", pa.string(), "the memory controller: its device serial in hex", nullable=False),
        described("memory_tier", DICT, "the memory measured: cxl or local_dram", nullable=False),
        described(
            "head_or_ld", pa.uint8(), "the head or logical device of a multi-headed or pooled device", nullable=False
        ),
        described("op", DICT, "the operation measured: read or write", nullable=False),
        described(
            "scale",
            pa.int8(),
            "histogram scale: bucket i covers (base^i, base^(i+1)] ns, base = 2^(2^-scale)",
            nullable=False,
        ),
        described("bucket_offset", pa.int32(), "bucket number of the first element of bucket_counts", nullable=False),
        described(
            "bucket_counts", pa.list_(pa.uint32()), "samples per bucket, dense from bucket_offset", nullable=False
        ),
        described("count", pa.uint64(), "samples in the window", nullable=False),
        described("sum_ns", pa.float64(), "sum of the samples, ns: the exact mean is sum_ns / count", nullable=False),
        described("min_ns", pa.uint32(), "smallest sample, ns", nullable=False),
        described("max_ns", pa.uint32(), "largest sample, ns", nullable=False),
        described("slo_threshold_ns", pa.uint32(), "the latency threshold over_slo counts against, ns", nullable=False),
        described("over_slo", pa.uint64(), "exact count of samples above slo_threshold_ns", nullable=False),
        described("rd_bytes", pa.uint64(), "bytes read in the window", nullable=False),
        described("wr_bytes", pa.uint64(), "bytes written in the window", nullable=False),
        described("backpressure_avg_pct", pa.uint8(), "average backpressure over the window, percent", nullable=False),
    ],
)

INVENTORY_SCHEMA = _schema(
    TOPIC_INVENTORY,
    [
        described("controller_id", pa.string(), "the memory controller: its device serial in hex", nullable=False),
        described("region", DICT, "the region (site) of the rack", nullable=False),
        described("rack", DICT, "the rack of the host", nullable=False),
        described("host", DICT, "the host the controller is attached to", nullable=False),
        described("memdev", DICT, "the kernel's CXL memory device name on the host, e.g. mem0", nullable=False),
        described("pci_bdf", DICT, "the controller's PCI address (domain:bus:device.function)", nullable=False),
        described("sku", DICT, "the controller's product SKU", nullable=False),
        described("capacity_gb", pa.uint32(), "memory behind the controller, GB", nullable=False),
        described("dram_type", DICT, "the DRAM generation of its DIMMs, e.g. DDR5", nullable=False),
        described("dimm_count", pa.uint8(), "DIMMs behind the controller, count", nullable=False),
        described("max_link_width", pa.uint8(), "the link's maximum width, lanes", nullable=False),
        described("max_link_speed_gts", pa.float32(), "the link's maximum speed, GT/s", nullable=False),
        described("firmware_version", DICT, "the controller's running firmware version", nullable=False),
        described("deployed_at", TS, "when the controller was deployed (UTC)", nullable=False),
    ],
)

TRUTH_FAULTS_SCHEMA = _schema(
    "truth_faults",
    [
        described(
            "controller_id",
            pa.string(),
            "the memory controller the fault was injected into: its device serial in hex",
            nullable=False,
        ),
        described("kind", DICT, "the kind of fault injected", nullable=False),
        described("onset_ts", TS, "when the fault began (UTC)", nullable=False),
        described(
            "end_ts", TS, "when the fault ended (UTC); NULL for faults that last to the end of the simulated span"
        ),
        described(
            "precursor_onset_ts",
            TS,
            "first observable precursor, e.g. rising CEs or a link-error trend (UTC); NULL when the fault came "
            "without warning",
        ),
        described(
            "details",
            pa.string(),
            'JSON object, e.g. {"reset_kind": "warm", "silent": true} or {"from_width": 16, "to_width": 8}',
            nullable=False,
        ),
    ],
)

# Declared maintenance windows (the change calendar): a reset inside one is planned, not a failure. A window is
# declared for a host and published once per controller on it, so that it travels keyed by controller like every
# other stream (one controller's rows share a partition).
MAINTENANCE_SCHEMA = _schema(
    TOPIC_MAINTENANCE,
    [
        described(
            "controller_id", pa.string(), "a controller the window covers: its device serial in hex", nullable=False
        ),
        described("host", pa.string(), "the host whose maintenance was declared", nullable=False),
        described("start_ts", TS, "start of the window (UTC)", nullable=False),
        described("end_ts", TS, "end of the window (UTC)", nullable=False),
        described(
            "purpose",
            pa.string(),
            "why it was declared: host_maintenance (the host drains; its controllers take a firmware activation or "
            "warm reset)",
            nullable=False,
        ),
    ],
)

JOBS_SCHEMA = _schema(
    TOPIC_JOBS,
    [
        described("job_id", pa.string(), "unique id of the job", nullable=False),
        described(
            "controller_id",
            pa.string(),
            "the partition key: the host's name (a job uses its whole host's memory, like local-DRAM latency rows)",
            nullable=False,
        ),
        described("host", DICT, "the host the job ran on", nullable=False),
        described("workload", DICT, "the workload class: in_memory_db, llm_kv_cache or analytics", nullable=False),
        described(
            "memory_tier",
            DICT,
            "the host's memory: cxl (local DRAM expanded with CXL memory) or local_dram (local DRAM only: baseline)",
            nullable=False,
        ),
        described("footprint_gb", pa.float32(), "memory the job needed, GB", nullable=False),
        described(
            "host_memory_gb",
            pa.float32(),
            "memory its host offers jobs: local DRAM plus any CXL expansion, GB",
            nullable=False,
        ),
        described("start_ts", TS, "when the job started (UTC)", nullable=False),
        described("end_ts", TS, "when the job ended, whatever the outcome (UTC)", nullable=False),
        described(
            "outcome",
            DICT,
            "completed, failed (the job's own error), killed_reset or killed_link_drop (its host's memory went away)",
            nullable=False,
        ),
    ],
)

# Debug stream of raw per-access samples: only the simulator's test mode writes it (telemetry.md §6.3).
LATENCY_SAMPLES_SCHEMA = _schema(
    "latency_samples",
    [
        described("window_start", TS, "start of the window the sample fell in (UTC)", nullable=False),
        described("controller_id", pa.string(), "the memory controller: its device serial in hex", nullable=False),
        described("op", DICT, "the operation measured: read or write", nullable=False),
        described("latency_ns", pa.float64(), "one access's latency, ns", nullable=False),
    ],
)

TELEMETRY_SCHEMAS: dict[str, pa.Schema] = {
    TOPIC_ERRORS: ERRORS_SCHEMA,
    TOPIC_LINK: LINK_SCHEMA,
    TOPIC_LATENCY: LATENCY_SCHEMA,
    TOPIC_INVENTORY: INVENTORY_SCHEMA,
    TOPIC_MAINTENANCE: MAINTENANCE_SCHEMA,
    TOPIC_JOBS: JOBS_SCHEMA,
}

# Name of each stream's raw table in the lake and file stem in a Parquet run directory.
TABLE_NAMES: dict[str, str] = {
    TOPIC_ERRORS: "errors",
    TOPIC_LINK: "link",
    TOPIC_LATENCY: "latency",
    TOPIC_INVENTORY: "inventory",
    TOPIC_MAINTENANCE: "maintenance",
    TOPIC_JOBS: "jobs",
}

# The column that places each telemetry stream's rows in time (and in an hourly partition).
# (A job is reported when it ends.)
TIME_COLUMNS: dict[str, str] = {
    TOPIC_ERRORS: "ts",
    TOPIC_LINK: "ts",
    TOPIC_LATENCY: "window_start",
    TOPIC_JOBS: "end_ts",
}
# What identifies one telemetry row, whatever message carried it: two rows with the same key are copies of one
# (a batch an agent sent twice), and readers keep the first stored (docs/reliability.md, "Late and duplicate").
NATURAL_KEYS: dict[str, tuple[str, ...]] = {
    TOPIC_ERRORS: ("event_id",),
    TOPIC_LINK: ("controller_id", "port", "ts", "event"),
    TOPIC_LATENCY: ("controller_id", "window_start", "memory_tier", "head_or_ld", "op"),
    TOPIC_JOBS: ("job_id",),
}


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
# link, latency, inventory, maintenance, truth_faults; latency_samples in raw-samples mode) and a JSON description
# of the run.
RUN_DESCRIPTION = "run.json"


def run_table_file(run_dir: Path, table: str) -> Path:
    """Where a run directory keeps `table`: written by ingest.sim.parquet_sink, read by `leo-fleet load`
    (ingest.lake.loader) and by the offline evaluation (models.features, models.holdout)."""
    return Path(run_dir) / f"{table}.parquet"
