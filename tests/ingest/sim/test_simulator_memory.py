"""Memory is bounded by the chunk, not the simulated span: a 6x longer run peaks at about the same RSS."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

MIB = 1024 * 1024

# VmHWM, not getrusage: ru_maxrss survives exec, so a child forked from a large pytest process would report the
# parent's size; VmHWM belongs to the new address space.
_PEAK_RSS_OF_RUN = """
import re, sys
from pathlib import Path
from ingest.sim.parquet_sink import write_run
from ingest.sim.config import SimConfig
from ingest.sim.simulator import Simulation
config = SimConfig(controllers=2000, hours=float(sys.argv[1]), seed=1, chunk_intervals=30)
write_run(Simulation(config), Path(sys.argv[2]), progress=False)
print(int(re.search(r"VmHWM:\\s+(\\d+) kB", Path("/proc/self/status").read_text()).group(1)) * 1024)
"""


def peak_rss(hours: float, out: Path) -> int:
    result = subprocess.run(
        [sys.executable, "-c", _PEAK_RSS_OF_RUN, str(hours), str(out)],
        check=True,
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[3],
    )
    return int(result.stdout.strip())


def test_peak_rss_does_not_grow_with_the_simulated_span(tmp_path):
    short = peak_rss(1.0, tmp_path / "short")
    long = peak_rss(6.0, tmp_path / "long")
    assert (tmp_path / "long" / "latency.parquet").stat().st_size > 4 * (
        tmp_path / "short" / "latency.parquet"
    ).stat().st_size
    assert long < short * 1.15 + 40 * MIB, (short / MIB, long / MIB)
    assert long < 1024 * MIB
