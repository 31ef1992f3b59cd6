"""sysfs → the contract's link snapshots (leo.link) and inventory (leo.inventory) for every CXL memory device.

Each `<root>/bus/cxl/devices/mem*` is a symlink into the device tree; its parent is the PCIe endpoint (port
`dev_usp`) and that one's parent the root or switch port above it (`host_rp`). Both carry the link attributes
(`current_link_speed` "32.0 GT/s PCIe", `current_link_width` "16", `max_link_*`) and, with AER enabled, the
counters files `aer_dev_correctable`, `aer_dev_nonfatal`, `aer_dev_fatal`: lines "<name> <count>" ending with
TOTAL_ERR_COR / TOTAL_ERR_NONFATAL / TOTAL_ERR_FATAL (Documentation/ABI/testing/sysfs-bus-pci-devices-aer-stats).

The AER counters are zeroed when the device is set up (boot, re-enumeration), so a counter below its last value
starts a new counter epoch (telemetry.md §4). sysfs shows no LTSSM state or link-status flags: a link with a
speed is reported as L0, one without as Detect, with lnksta_flags 0.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from ingest import contract
from ingest.collect.cxl_monitor import HostIdentity, Reject

AER_FILES = ("aer_dev_correctable", "aer_dev_nonfatal", "aer_dev_fatal")
# aer_dev_correctable line name → leo.link column.
AER_COLUMNS = {
    "TOTAL_ERR_COR": "aer_cor_total",
    "RxErr": "rx_err",
    "BadTLP": "bad_tlp",
    "BadDLLP": "bad_dllp",
    "Rollover": "replay_rollover",
    "Timeout": "replay_timeout",
}
GIB = 2**30


@dataclass(frozen=True)
class Device:
    memdev: str
    controller_id: str
    pci_dir: Path
    firmware_version: str
    capacity_gb: int


@dataclass(frozen=True)
class Snapshot:
    link: pa.Table
    inventory: pa.Table
    rejects: list[Reject]
    state: dict  # the counter epochs and published inventory, to save once the rows are acknowledged


class SysfsError(ValueError):
    """An attribute missing or not in its documented format; the message is the quarantine reason."""


def snapshot(root: Path, identity: HostIdentity, now_ns: int, state: dict) -> Snapshot:
    """One poll of every CXL memory device under `root`; `state` is the previous poll's (or {})."""
    epochs = dict(state.get("epochs", {}))
    inventory = dict(state.get("inventory", {}))
    link_rows, inventory_rows, rejects = [], [], []
    for memdir in sorted((root / "bus" / "cxl" / "devices").glob("mem*")):
        try:
            device = read_device(memdir)
            endpoint = read_port(device.pci_dir)
            if endpoint is None:
                raise SysfsError(f"{device.pci_dir} has no link attributes")
            ports = [("dev_usp", endpoint), ("host_rp", read_port(device.pci_dir.parent))]
        except (SysfsError, OSError) as problem:
            rejects.append(Reject(json.dumps({"sysfs": str(memdir)}).encode(), f"sysfs_unreadable: {problem}"))
            continue
        for port, reading in ports:
            if reading is None:  # the port above is not a PCIe function with link attributes (a host bridge)
                continue
            key = f"{device.controller_id}/{port}"
            epochs[key] = next_epoch(epochs.get(key), reading["counters"])
            link_rows.append(_link_row(identity, device, port, reading, epochs[key]["epoch"], now_ns))
        fingerprint = [device.memdev, device.pci_dir.name, device.firmware_version, device.capacity_gb]
        known = inventory.get(device.controller_id)
        if known is None or known["fingerprint"] != fingerprint:
            deployed_at = known["deployed_at"] if known else now_ns
            inventory[device.controller_id] = {"fingerprint": fingerprint, "deployed_at": deployed_at}
            inventory_rows.append(_inventory_row(identity, device, endpoint, deployed_at))
    return Snapshot(
        pa.Table.from_pylist(link_rows, schema=contract.LINK_SCHEMA),
        pa.Table.from_pylist(inventory_rows, schema=contract.INVENTORY_SCHEMA),
        rejects,
        {"epochs": epochs, "inventory": inventory},
    )


def devices_by_function(root: Path) -> dict[str, Device]:
    """Each readable CXL memory device under its PCIe endpoint's name and the name of the port above it (when that
    port leads to this device only), so an event that names a PCI function (rasdaemon's aer_event) finds its
    controller. Unreadable devices are left out here; `snapshot` reports them."""
    found: dict[str, Device] = {}
    below: dict[str, list[Device]] = {}
    for memdir in sorted((root / "bus" / "cxl" / "devices").glob("mem*")):
        try:
            device = read_device(memdir)
        except (SysfsError, OSError):
            continue
        found[device.pci_dir.name] = device
        below.setdefault(device.pci_dir.parent.name, []).append(device)
    for port, devices in below.items():
        if len(devices) == 1:
            found.setdefault(port, devices[0])
    return found


def read_device(memdir: Path) -> Device:
    """The memdev's serial (0x-hex in sysfs), firmware version, capacity and PCI device directory."""
    serial = _attribute(memdir / "serial")
    try:
        number = int(serial, 0)
    except ValueError:
        raise SysfsError(f"{memdir / 'serial'}: {serial!r} is not a number") from None
    sizes = [memdir / kind / "size" for kind in ("ram", "pmem")]
    capacity = sum(int(_attribute(size), 0) for size in sizes if size.exists())
    return Device(
        memdev=memdir.name,
        controller_id=f"0x{number:016x}",
        pci_dir=memdir.resolve().parent,
        firmware_version=_attribute(memdir / "firmware_version"),
        capacity_gb=capacity // GIB,
    )


def read_port(pci_dir: Path) -> dict | None:
    """Link speed and width and the AER counters of one PCIe function, or None when it has no link attributes."""
    if not (pci_dir / "current_link_speed").exists():
        return None
    counters = {}
    for name in AER_FILES:
        if (pci_dir / name).exists():
            counters.update({f"{name}:{key}": value for key, value in parse_aer(pci_dir / name).items()})
    reading = {
        "cur_speed_gts": parse_speed(_attribute(pci_dir / "current_link_speed")),
        "max_speed_gts": parse_speed(_attribute(pci_dir / "max_link_speed")),
        "cur_width": _width(pci_dir / "current_link_width"),
        "max_width": _width(pci_dir / "max_link_width"),
        "counters": counters,
    }
    if not reading["max_speed_gts"] or not reading["max_width"]:
        raise SysfsError(f"{pci_dir}: no maximum link speed or width")
    return reading


def parse_aer(path: Path) -> dict[str, int]:
    counts = {}
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            raise SysfsError(f"{path}: {line!r} is not '<name> <count>'")
        counts[parts[0]] = int(parts[1])
    return counts


def parse_speed(text: str) -> float:
    """'32.0 GT/s PCIe' (or '32 GT/s') → 32.0; 'Unknown' (link down) → 0."""
    if text.startswith("Unknown"):
        return 0.0
    number = text.split(" GT/s")[0]
    try:
        speed = float(number)
    except ValueError:
        raise SysfsError(f"link speed {text!r} is not '<n> GT/s'") from None
    if speed not in contract.PCIE_SPEEDS_GTS:
        raise SysfsError(f"link speed {text!r} is not a PCIe rate {contract.PCIE_SPEEDS_GTS}")
    return speed


def next_epoch(previous: dict | None, counters: dict[str, int]) -> dict:
    """The same epoch while every counter grows or stays; the next one when any went down (a reset zeroed them)."""
    if previous is None:
        return {"epoch": 0, "counters": counters}
    went_down = any(value < previous["counters"].get(name, 0) for name, value in counters.items())
    return {"epoch": previous["epoch"] + went_down, "counters": counters}


def _attribute(path: Path) -> str:
    return path.read_text().strip()


def _width(path: Path) -> int:
    text = _attribute(path)
    if not text.isdigit() or (int(text) and int(text) not in contract.PCIE_WIDTHS):
        raise SysfsError(f"{path}: {text!r} is not a PCIe link width")
    return int(text)


def _link_row(identity: HostIdentity, device: Device, port: str, reading: dict, epoch: int, now_ns: int) -> dict:
    correctable = {
        column: reading["counters"].get(f"aer_dev_correctable:{name}", 0) for name, column in AER_COLUMNS.items()
    }
    return {
        "ts": now_ns,
        "host": identity.host,
        "controller_id": device.controller_id,
        "counter_epoch": epoch,
        "port": port,
        "event": "snapshot",
        "reason": None,
        "ltssm_state": "L0" if reading["cur_speed_gts"] and reading["cur_width"] else "Detect",
        "cur_speed_gts": reading["cur_speed_gts"],
        "max_speed_gts": reading["max_speed_gts"],
        "cur_width": reading["cur_width"],
        "max_width": reading["max_width"],
        "lnksta_flags": 0,
        "flit_mode": False,
        "down_ms": None,
        **correctable,
        "cxl_crc_thresh_hits": 0,
        "cxl_retry_thresh_hits": 0,
        "reinit_thresh_hits": 0,
        "link_down_count": 0,
        "recovery_entries": 0,
    }


def _inventory_row(identity: HostIdentity, device: Device, endpoint: dict, deployed_at: int) -> dict:
    return {
        "controller_id": device.controller_id,
        "region": identity.region,
        "rack": identity.rack,
        "host": identity.host,
        "memdev": device.memdev,
        "pci_bdf": device.pci_dir.name,
        # *inferred*: an x16 device is an add-in card, a narrower one an E3.S module (contract.SKUS).
        "sku": "aic" if endpoint["max_width"] == 16 else "e3s",
        "capacity_gb": device.capacity_gb,
        "dram_type": "unknown",  # sysfs does not say; the fleet tool's inventory does
        "dimm_count": 0,  # unknown, as above
        "max_link_width": endpoint["max_width"],
        "max_link_speed_gts": endpoint["max_speed_gts"],
        "firmware_version": device.firmware_version,
        "deployed_at": deployed_at,
    }
