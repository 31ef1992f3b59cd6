"""The fleet inventory: regions → racks → hosts → controllers, with SKU, capacity, link and firmware.

Deterministic from the seed alone, so every run of one seed describes the same fleet.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from ingest.contract import DRAM_TYPE, INVENTORY_SCHEMA, SKUS
from ingest.sim.arrow_columns import contract_table, dictionary, timestamps
from ingest.sim.config import SimConfig
from ingest.sim.seeding import rng_for

SKU_AIC, SKU_E3S = SKUS.index("aic"), SKUS.index("e3s")
GEN5_GTS = 32.0
_DAYS_PER_MONTH = 30.44
_SERIAL_PREFIX = 0x1D9A << 48  # ASSUMPTION: a vendor-like prefix above a 48-bit device number


@dataclass(frozen=True)
class Fleet:
    """Per-controller attributes as numpy arrays (index = controller number) plus the name tables."""

    controller_ids: pa.Array  # device serial as hex, e.g. 0x1d9a00003a7f12c4
    host: np.ndarray  # host index per controller
    slot: np.ndarray  # memdev / PCI slot within the host
    rack_of_host: np.ndarray
    region_of_rack: np.ndarray
    host_names: pa.Array
    rack_names: pa.Array
    region_names: tuple[str, ...]
    sku: np.ndarray
    capacity_gb: np.ndarray
    dimm_count: np.ndarray
    max_width: np.ndarray
    firmware: np.ndarray
    firmware_names: tuple[str, ...]
    deployed_at_ns: np.ndarray

    @property
    def size(self) -> int:
        return len(self.host)

    @property
    def n_hosts(self) -> int:
        return len(self.host_names)

    @property
    def rack(self) -> np.ndarray:
        return self.rack_of_host[self.host]

    @property
    def region(self) -> np.ndarray:
        return self.region_of_rack[self.rack]

    @property
    def max_slots(self) -> int:
        return int(self.slot.max()) + 1

    def memdev_names(self) -> list[str]:
        return [f"mem{slot}" for slot in range(self.max_slots)]

    def pci_bdf_names(self) -> list[str]:
        """One root port per slot, 16 buses apart, like a two-socket server's CXL slots."""
        return [f"0000:{0x38 + 0x10 * slot:02x}:00.0" for slot in range(self.max_slots)]

    def location_columns(self, controller: np.ndarray) -> dict[str, pa.Array | pa.ChunkedArray]:
        """The host/rack/region/memdev/pci_bdf dictionary columns for rows of the given controllers."""
        host = self.host[controller]
        rack = self.rack_of_host[host]
        return {
            "host": dictionary(host, self.host_names),
            "rack": dictionary(rack, self.rack_names),
            "region": dictionary(self.region_of_rack[rack], self.region_names),
            "memdev": dictionary(self.slot[controller], self.memdev_names()),
            "pci_bdf": dictionary(self.slot[controller], self.pci_bdf_names()),
        }

    def to_table(self) -> pa.Table:
        n = self.size
        columns = {
            "controller_id": self.controller_ids,
            **self.location_columns(np.arange(n)),
            "sku": dictionary(self.sku, SKUS),
            "capacity_gb": pa.array(self.capacity_gb, pa.uint32()),
            "dram_type": dictionary(np.zeros(n, np.int16), [DRAM_TYPE]),
            "dimm_count": pa.array(self.dimm_count, pa.uint8()),
            "max_link_width": pa.array(self.max_width, pa.uint8()),
            "max_link_speed_gts": pa.array(np.full(n, GEN5_GTS, np.float32)),
            "firmware_version": dictionary(self.firmware, self.firmware_names),
            "deployed_at": timestamps(self.deployed_at_ns),
        }
        return contract_table(INVENTORY_SCHEMA, columns, n)


def build_fleet(config: SimConfig) -> Fleet:
    knobs = config.fleet
    rng = rng_for(config.seed, "fleet")
    n = config.controllers
    weights = np.asarray(knobs.controllers_per_host_weights, float)
    per_host = rng.choice(np.arange(1, weights.size + 1), size=n, p=weights / weights.sum())
    ends = np.cumsum(per_host)
    n_hosts = int(np.searchsorted(ends, n) + 1)
    per_host = per_host[:n_hosts]
    per_host[-1] -= ends[n_hosts - 1] - n
    host = np.repeat(np.arange(n_hosts), per_host).astype(np.int32)
    slot = np.arange(n) - np.repeat(np.cumsum(per_host) - per_host, per_host)

    n_racks = (n_hosts + knobs.hosts_per_rack - 1) // knobs.hosts_per_rack
    rack_of_host = (np.arange(n_hosts) // knobs.hosts_per_rack).astype(np.int32)
    region_of_rack = (np.arange(n_racks) % len(knobs.regions)).astype(np.int16)
    rack_names = [f"{knobs.regions[region_of_rack[r]]}-r{r:04d}" for r in range(n_racks)]
    host_names = [f"{rack_names[rack_of_host[h]]}-h{h % knobs.hosts_per_rack:02d}" for h in range(n_hosts)]

    sku = np.where(rng.random(n) < knobs.aic_share, SKU_AIC, SKU_E3S).astype(np.int8)
    aic_dimms = rng.choice(knobs.aic_dimm_counts, n)
    capacity = np.where(
        sku == SKU_AIC, aic_dimms * rng.choice(knobs.aic_dimm_sizes_gb, n), rng.choice(knobs.e3s_capacities_gb, n)
    )
    dimm_count = np.where(sku == SKU_AIC, aic_dimms, knobs.e3s_dimm_equivalents)
    shares = np.asarray(knobs.firmware_shares, float)
    firmware = rng.choice(len(knobs.firmware_versions), size=n, p=shares / shares.sum()).astype(np.int16)
    age_s = rng.random(n) * knobs.max_age_months * _DAYS_PER_MONTH * 86400
    start_ns = int(config.start.timestamp()) * 10**9
    deployed_at_ns = start_ns - (age_s * 1e9).astype(np.int64)

    # An odd multiplier and an offset modulo 2**48 are a bijection: serials look random yet never collide.
    offset = np.uint64(rng.integers(0, 1 << 48))
    number = (np.arange(n, dtype=np.uint64) * np.uint64(0x9E3779B97F4B) + offset) % np.uint64(1 << 48)
    serials = [f"0x{_SERIAL_PREFIX | int(v):016x}" for v in number]
    return Fleet(
        controller_ids=pa.array(serials, pa.string()),
        host=host,
        slot=slot.astype(np.int16),
        rack_of_host=rack_of_host,
        region_of_rack=region_of_rack,
        host_names=pa.array(host_names, pa.string()),
        rack_names=pa.array(rack_names, pa.string()),
        region_names=tuple(knobs.regions),
        sku=sku,
        capacity_gb=capacity.astype(np.uint32),
        dimm_count=dimm_count.astype(np.uint8),
        max_width=np.where(sku == SKU_AIC, 16, 8).astype(np.uint8),
        firmware=firmware,
        firmware_names=tuple(knobs.firmware_versions),
        deployed_at_ns=deployed_at_ns,
    )


def build_inventory(config: SimConfig) -> pa.Table:
    """INVENTORY_SCHEMA rows, one per controller, deterministic from the seed."""
    return build_fleet(config).to_table()
