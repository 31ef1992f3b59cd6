import math

import numpy as np
import pyarrow as pa
import pytest

from models.anomaly import event_rate_anomalies, poisson_sf
from models.features import WindowFeatures
from models.series import NS_PER_HOUR, Controllers


def _features(values: np.ndarray, names: tuple[str, ...], firmware: list[str] | None = None) -> WindowFeatures:
    n_c, n_w, _ = values.shape
    ids = Controllers(pa.array([f"c{i:03d}" for i in range(n_c)]))
    firmware = np.array(firmware or ["1.0"] * n_c, dtype=object)
    return WindowFeatures(ids, NS_PER_HOUR * (np.arange(n_w) + 1), names, values, firmware)


def test_poisson_tail_matches_the_closed_form():
    assert poisson_sf(np.array([0]), np.array([2.0]))[0] == 1.0
    assert poisson_sf(np.array([1]), np.array([1.0]))[0] == pytest.approx(1 - math.exp(-1))
    expected = 1 - math.exp(-0.5) * (1 + 0.5 + 0.125)
    assert poisson_sf(np.array([3]), np.array([0.5]))[0] == pytest.approx(expected)


def test_reset_loops_flapping_links_and_bad_cohorts_stand_out_from_the_fleet():
    names = ("resets_24h", "link_drops_24h", "link_retrains_24h")
    counts = np.zeros((60, 3, 3))
    counts[:, :, 0] = np.arange(60)[:, None] % 10 == 0  # six controllers with one ordinary reset each
    counts[7, 2, 0] = 6  # a reset loop in the last window
    counts[9, :, 1:] = 3  # a flapping link: 3 drops + 3 retrains in every window
    firmware = ["2.5.0" if i >= 40 else "2.6.0" for i in range(60)]
    counts[40:, 1, 1] = 1  # the whole 2.5.0 cohort drops once in window 1
    table = event_rate_anomalies(_features(np.log1p(counts), names, firmware)).to_pylist()
    flagged = {(r["scope"], r["subject"], r["kind"], int(r["window_end"].timestamp() // 3600)) for r in table}
    assert ("controller", "c007", "reset_loop", 3) in flagged
    assert {("controller", "c009", "flapping_link", w) for w in (1, 2, 3)} <= flagged
    assert ("cohort", "2.5.0", "firmware_cohort", 2) in flagged
    ordinary = {f"c{i:03d}" for i in range(0, 60, 10)}
    assert not {r["subject"] for r in table if r["kind"] == "reset_loop"} & ordinary
    assert "2.6.0" not in {r["subject"] for r in table}
