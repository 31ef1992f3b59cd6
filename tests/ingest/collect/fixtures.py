"""Collector fixtures written from the documented formats, not from the collector's code.

`cxl monitor` lines: ndctl cxl/event_trace.c writes "system", "event", "timestamp" and then every tracepoint field
of torvalds/linux drivers/cxl/core/trace.h by name (uuid as a string, arrays as lists of numbers). sysfs: the memdev
attributes (serial "0x…", firmware_version, ram/size) and the PCI attributes of
Documentation/ABI/testing/sysfs-bus-pci{,-devices-aer-stats} ("32.0 GT/s PCIe", "16", "<name> <count>" lines).
"""

from __future__ import annotations

import json
from pathlib import Path

SERIAL = 0x1D9A00003A7F12C4
CONTROLLER_ID = "0x1d9a00003a7f12c4"
BDF = "0000:38:00.0"
ROOT_PORT = "0000:00:01.0"
DEVICE_TS = 1_764_871_200_123_456_789  # 2025-12-04T18:00:00.123456789Z
NO_HPA = 2**64 - 1

_COMMON = {"system": "cxl", "timestamp": 8_123_456_789, "memdev": "mem0", "host": BDF, "serial": SERIAL}
_HEADER = {
    "hdr_flags": 0x18,  # MAINTENANCE_NEEDED | PERFORMANCE_DEGRADED
    "hdr_handle": 7,
    "hdr_related_handle": 0,
    "hdr_timestamp": DEVICE_TS,
    "hdr_length": 128,
    "hdr_maint_op_class": 0,
    "hdr_maint_op_sub_class": 0,
}
_REGION = {"region_uuid": "00000000-0000-0000-0000-000000000000", "region_name": ""}

GENERAL_MEDIA = {
    **_COMMON,
    "event": "cxl_general_media",
    "log": 1,
    "hdr_uuid": "fbcd0a77-c260-417f-85a9-088b1621eba6",
    **_HEADER,
    "dpa": 0x40001000,
    "descriptor": 0x2,  # THRESHOLD_EVENT
    "type": 4,  # Scrub Media ECC Error
    "transaction_type": 5,  # Internal Media Scrub
    "channel": 1,
    "device": 3,
    "comp_id": [0] * 16,
    "hpa": 0x1_4000_1000,
    **_REGION,
    "validity_flags": 0x1,  # CHANNEL only: rank is not valid
    "rank": 2,
    "dpa_flags": 1,
    "cme_count": 37,
    "sub_type": 0,
    "cme_threshold_ev_flags": 2,
}
DRAM = {
    **_COMMON,
    "event": "cxl_dram",
    "log": 2,
    "hdr_uuid": "601dcbb3-9c06-4eab-b8af-4e9bfb5c9624",
    **_HEADER,
    "hdr_timestamp": 0,  # a device whose clock was never set
    "dpa": 0x2000,
    "descriptor": 0x1,  # UNCORRECTABLE_EVENT
    "type": 0,  # ECC Error
    "transaction_type": 1,  # Host Read
    "channel": 0,
    "validity_flags": 0x7F,  # channel, rank, nibble, bank group, bank, row, column
    "column": 1023,
    "nibble_mask": 0x10,
    "row": 0x1FFFF,
    "cor_mask": [0] * 32,
    "hpa": NO_HPA,
    **_REGION,
    "rank": 3,
    "bank_group": 5,
    "bank": 2,
    "dpa_flags": 0,
    "comp_id": [0] * 16,
    "cvme_count": 9,
    "sub_type": 1,
    "sub_channel": 0,
    "cme_threshold_ev_flags": 0,
}
MEMORY_MODULE = {
    **_COMMON,
    "event": "cxl_memory_module",
    "log": 0,
    "hdr_uuid": "fe927475-dd59-4339-a586-79bab113b774",
    **_HEADER,
    "event_type": 3,  # Temperature Change
    "health_status": 0x1,
    "media_status": 0,
    "life_used": 0xFF,  # not implemented
    "dirty_shutdown_cnt": 1,
    "cor_vol_err_cnt": 1234,
    "cor_per_err_cnt": 0,
    "device_temp": 71,
    "add_status": 0x4,  # temperature warning
    "event_sub_type": 0,
    "comp_id": [0] * 16,
    "validity_flags": 0,
}
AER_UE = {
    **_COMMON,
    "event": "cxl_aer_uncorrectable_error",
    "status": 0x180,  # Memory Data ECC Error | REINIT Threshold Hit
    "first_error": 0x80,
    "header_log": [0] * 128,
}
AER_CE = {**_COMMON, "event": "cxl_aer_correctable_error", "status": 0xC}  # CRC Threshold Hit | Retry Threshold
POISON = {
    **_COMMON,
    "event": "cxl_poison",
    "trace_type": 0,
    "region": "region0",
    "overflow_ts": 0,
    "hpa": 0x1_0000_0040,
    "dpa": 0x40,
    "dpa_length": 64,
    "uuid": [0] * 16,
    "source": 2,
    "flags": 0,
}
OVERFLOW = {
    **_COMMON,
    "event": "cxl_overflow",
    "log": 1,
    "first_ts": DEVICE_TS,
    "last_ts": DEVICE_TS + 5_000_000_000,
    "count": 412,
}
EVENTS = (GENERAL_MEDIA, DRAM, MEMORY_MODULE, AER_UE, AER_CE, POISON, OVERFLOW)
MALFORMED = b'{"system": "cxl", "event": "cxl_dram", "memdev": "mem0"'  # cut short: not JSON


def line(record: dict, **changes: object) -> bytes:
    return json.dumps({**record, **changes}).encode()


def write_lines(path: Path, lines: list[bytes]) -> None:
    with open(path, "ab") as file:
        file.write(b"".join(item + b"\n" for item in lines))


def fake_sysfs(root: Path, firmware: str = "1.4.2", correctable: int = 5) -> Path:
    """One memdev (mem0) under a root port: bus/cxl/devices/mem0 links into devices/pci0000:00/<rp>/<ep>/mem0."""
    root_port = root / "devices" / "pci0000:00" / ROOT_PORT
    endpoint = root_port / BDF
    memdev = endpoint / "mem0"
    (memdev / "ram").mkdir(parents=True)
    write_attributes(memdev, serial=f"0x{SERIAL:x}", firmware_version=firmware)
    write_attributes(memdev / "ram", size="0x4000000000")  # 256 GiB
    write_link(endpoint, "32.0 GT/s PCIe", 16, correctable=correctable)
    write_link(root_port, "32.0 GT/s PCIe", 16, correctable=0)
    devices = root / "bus" / "cxl" / "devices"
    devices.mkdir(parents=True)
    (devices / "mem0").symlink_to(memdev)
    return root


def write_link(pci_dir: Path, speed: str, width: int, correctable: int) -> None:
    write_attributes(
        pci_dir,
        current_link_speed=speed,
        max_link_speed="32.0 GT/s PCIe",
        current_link_width=str(width),
        max_link_width="16",
        aer_dev_correctable=aer_lines(
            RxErr=correctable, BadTLP=1, BadDLLP=2, Rollover=0, Timeout=3, TOTAL_ERR_COR=correctable + 6
        ),
        aer_dev_nonfatal=aer_lines(Undefined=0, DLP=0, TOTAL_ERR_NONFATAL=0),
        aer_dev_fatal=aer_lines(Undefined=0, SDES=0, TOTAL_ERR_FATAL=0),
    )


def aer_lines(**counts: int) -> str:
    return "".join(f"{name} {count}\n" for name, count in counts.items())


def write_attributes(directory: Path, **attributes: str) -> None:
    for name, value in attributes.items():
        (directory / name).write_text(value if value.endswith("\n") else value + "\n")
