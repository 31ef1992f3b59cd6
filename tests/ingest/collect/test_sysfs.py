"""A fake sysfs tree → link snapshots per port, counter epochs, inventory once per change, rejects for bad trees."""

from __future__ import annotations

import pyarrow as pa

from ingest import contract
from ingest.collect.cxl_monitor import HostIdentity
from ingest.collect.sysfs import parse_speed, snapshot
from ingest.kafka import codec
from tests.ingest.collect import fixtures as fx

IDENTITY = HostIdentity("host-a", "rack-7", "eu-west")
NOW = 1_764_871_260_000_000_000
SECOND = 1_000_000_000


def rows(table: pa.Table) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "ts"} for row in table.to_pylist()]


def test_link_snapshot_of_the_endpoint_and_its_root_port(tmp_path):
    root = fx.fake_sysfs(tmp_path, correctable=5)

    result = snapshot(root, IDENTITY, NOW, {})

    assert result.rejects == []
    assert result.link.schema.equals(contract.LINK_SCHEMA, check_metadata=True)
    codec._validate(result.link, contract.LINK_SCHEMA)
    common = {
        "host": "host-a",
        "controller_id": fx.CONTROLLER_ID,
        "counter_epoch": 0,
        "event": "snapshot",
        "reason": None,
        "ltssm_state": "L0",
        "cur_speed_gts": 32.0,
        "max_speed_gts": 32.0,
        "cur_width": 16,
        "max_width": 16,
        "lnksta_flags": 0,
        "flit_mode": False,
        "down_ms": None,
        "bad_tlp": 1,
        "bad_dllp": 2,
        "replay_rollover": 0,
        "replay_timeout": 3,
        "cxl_crc_thresh_hits": 0,
        "cxl_retry_thresh_hits": 0,
        "reinit_thresh_hits": 0,
        "link_down_count": 0,
        "recovery_entries": 0,
    }
    assert rows(result.link) == [
        {**common, "port": "dev_usp", "aer_cor_total": 11, "rx_err": 5},
        {**common, "port": "host_rp", "aer_cor_total": 6, "rx_err": 0},
    ]
    assert result.link.column("ts").cast(pa.int64()).to_pylist() == [NOW, NOW]


def test_inventory_is_published_once_and_again_when_the_firmware_changes(tmp_path):
    root = fx.fake_sysfs(tmp_path, firmware="1.4.2")

    first = snapshot(root, IDENTITY, NOW, {})
    unchanged = snapshot(root, IDENTITY, NOW + 10 * SECOND, first.state)
    fx.write_attributes(root / "bus/cxl/devices/mem0", firmware_version="1.5.0")
    upgraded = snapshot(root, IDENTITY, NOW + 20 * SECOND, unchanged.state)

    codec._validate(first.inventory, contract.INVENTORY_SCHEMA)
    assert rows(first.inventory) == [
        {
            "controller_id": fx.CONTROLLER_ID,
            "region": "eu-west",
            "rack": "rack-7",
            "host": "host-a",
            "memdev": "mem0",
            "pci_bdf": fx.BDF,
            "sku": "aic",
            "capacity_gb": 256,
            "dram_type": "unknown",
            "dimm_count": 0,
            "max_link_width": 16,
            "max_link_speed_gts": 32.0,
            "firmware_version": "1.4.2",
            "deployed_at": first.inventory.column("deployed_at")[0].as_py(),
        }
    ]
    assert unchanged.inventory.num_rows == 0
    assert upgraded.inventory.column("firmware_version").to_pylist() == ["1.5.0"]
    assert upgraded.inventory.column("deployed_at").equals(first.inventory.column("deployed_at"))


def test_a_counter_that_goes_down_starts_a_new_epoch(tmp_path):
    root = fx.fake_sysfs(tmp_path, correctable=50)
    endpoint = (root / "bus/cxl/devices/mem0").resolve().parent

    first = snapshot(root, IDENTITY, NOW, {})
    fx.write_link(endpoint, "32.0 GT/s PCIe", 16, correctable=60)
    grew = snapshot(root, IDENTITY, NOW + 10 * SECOND, first.state)
    fx.write_link(endpoint, "16.0 GT/s PCIe", 8, correctable=2)  # device re-enumerated: counters zeroed
    reset = snapshot(root, IDENTITY, NOW + 20 * SECOND, grew.state)

    def endpoint_row(result) -> dict:
        return rows(result.link)[0]

    assert [endpoint_row(r)["counter_epoch"] for r in (first, grew, reset)] == [0, 0, 1]
    assert [endpoint_row(r)["rx_err"] for r in (first, grew, reset)] == [50, 60, 2]
    assert (endpoint_row(reset)["cur_speed_gts"], endpoint_row(reset)["cur_width"]) == (16.0, 8)
    assert [rows(r.link)[1]["counter_epoch"] for r in (first, grew, reset)] == [0, 0, 0]  # the root port did not reset


def test_a_link_that_is_down_is_a_snapshot_in_detect(tmp_path):
    root = fx.fake_sysfs(tmp_path)
    fx.write_link((root / "bus/cxl/devices/mem0").resolve().parent, "Unknown", 0, correctable=0)

    row = rows(snapshot(root, IDENTITY, NOW, {}).link)[0]

    assert (row["ltssm_state"], row["cur_speed_gts"], row["cur_width"]) == ("Detect", 0.0, 0)


def test_a_device_with_unreadable_attributes_is_a_reject_and_the_others_still_report(tmp_path):
    root = fx.fake_sysfs(tmp_path)
    second = root / "devices/pci0000:00/0000:00:02.0/0000:39:00.0/mem1"
    second.mkdir(parents=True)
    fx.write_attributes(second, serial="not-a-serial", firmware_version="1.0")
    (root / "bus/cxl/devices/mem1").symlink_to(second)

    result = snapshot(root, IDENTITY, NOW, {})

    assert result.link.num_rows == 2 and result.inventory.num_rows == 1
    assert len(result.rejects) == 1
    assert result.rejects[0].reason.startswith("sysfs_unreadable: ") and b"mem1" in result.rejects[0].raw


def test_link_speeds_as_sysfs_prints_them():
    assert [parse_speed(t) for t in ("2.5 GT/s PCIe", "32.0 GT/s PCIe", "64 GT/s", "Unknown")] == [2.5, 32.0, 64.0, 0.0]
