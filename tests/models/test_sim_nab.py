"""bench.sim_nab: NAB-sized windows snapped to the file's rows, and the whole path (simulated fleet, truth windows,
NAB's harness) on a small fleet."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from bench.sim_nab import main, windows

NAB = Path(__file__).resolve().parents[3] / "shared" / "nab"
MINUTE = 60_000_000_000


def test_windows_are_nab_sized_snapped_to_rows_and_merged() -> None:
    times = np.arange(1000) * MINUTE
    # Two events share 10 % of 999 minutes: each window is about 50 rows wide, centred on its onset.
    assert windows(times, [(300 * MINUTE, 300 * MINUTE), (700 * MINUTE, 710 * MINUTE)]) == [(276, 324), (676, 734)]
    # Overlapping windows merge; one reaching past the file is clipped to its last row.
    assert windows(times, [(500 * MINUTE, 500 * MINUTE), (510 * MINUTE, 2000 * MINUTE)]) == [(476, 999)]
    assert windows(times, []) == []


@pytest.mark.skipif(not (NAB / "nab_score.py").exists(), reason="no NAB harness at ../shared/nab")
def test_the_simulated_corpus_is_scored_by_the_harness(capsys: pytest.CaptureFixture) -> None:
    assert main(["--controllers", "8", "--hours", "12", "--nab", str(NAB)]) == 0
    out = capsys.readouterr().out
    windows_found = int(re.search(r"seed 0: (\d+) windows", out).group(1))
    assert out.startswith("detector: models.latency_detector:nab_detector\n")
    assert windows_found > 0 and "0 of 8 files changed" in out
    assert re.search(r"standard -?[\d.]+ \(threshold", out)
