"""The link_events asset's recovery chart shows the drops: seconds-to-minutes drops and hours-long downgrades in
one hour's incidents each spread over bins of their own, not all in the first bin of a linear axis."""

from __future__ import annotations

from datetime import UTC, datetime

import matplotlib.pyplot as plt
import numpy as np
import pyarrow as pa

from models.link_events import INCIDENTS_SCHEMA
from pipelines.defs.detections.detections import plot_recovery

START = datetime(2026, 1, 5, tzinfo=UTC)


def incidents(recoveries: dict[str, list[float | None]]) -> pa.Table:
    kinds = [kind for kind, values in recoveries.items() for _ in values]
    n = len(kinds)
    return pa.table(
        {
            "controller_id": [f"c{i}" for i in range(n)],
            "kind": kinds,
            "start_ts": [START] * n,
            "detected_ts": [START] * n,
            "end_ts": [None] * n,
            "outage_s": [None] * n,
            "recovery_s": [value for values in recoveries.values() for value in values],
            "evidence": ["event"] * n,
        },
        schema=INCIDENTS_SCHEMA,
    )


def test_drops_and_downgrades_each_fill_bins_of_their_own() -> None:
    rng = np.random.default_rng(15)
    drops, downgrades = rng.uniform(8, 300, 40), rng.uniform(600, 65_000, 40)
    fig, ax = plt.subplots()
    try:
        plot_recovery(incidents({"drop": list(drops), "downgrade": list(downgrades)}), ax)
        (drop_bars, downgrade_bars) = ax.containers
        filled = [sum(bar.get_height() > 0 for bar in bars) for bars in (drop_bars, downgrade_bars)]
        labels = [label.get_text() for label in ax.get_xticklabels()]
        assert ax.get_xscale() == "log" and filled[0] >= 5 and filled[1] >= 5, filled
        assert sum(bar.get_height() for bar in drop_bars) == len(drops)  # every drop is on the chart
        fig.canvas.draw()
        left, right = (ax.transData.transform((x, 0))[0] for x in (drops.min(), drops.max()))
        assert right - left > ax.bbox.width / 5  # the drops span a fifth of the chart's width, not a sliver
        assert {"1 min", "10 min", "1 h"} <= set(labels) and "recovery time" in ax.get_xlabel()
        assert ax.get_legend().get_texts()[0].get_text().startswith("drop: 40, median")
    finally:
        plt.close(fig)


def test_an_hour_without_recoveries_draws_nothing() -> None:
    fig, ax = plt.subplots()
    try:
        plot_recovery(incidents({"retrain": [None]}), ax)  # a retrain has no recovery time
        assert not ax.containers
    finally:
        plt.close(fig)
