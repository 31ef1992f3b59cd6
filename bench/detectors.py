"""Speed of every detector of docs/detector_quality.md on one simulated fleet run (issue 13: "the speed of each
detector").

    .venv/bin/python -m bench.detectors --run /tmp/leo-eval/a50-s101

Each detector runs once over the whole run, as `leo-fleet evaluate` runs it, and its rows/s are printed beside a
ceiling measured in the same run: pyarrow decoding the columns it reads (the telemetry detectors), or one numpy
pass over the feature matrix (the feature-based ones). The early-warning model is fitted on the run's first half
(every controller: speed, not quality) and then scores every controller-hour; the health score adds the exact
per-feature shares to that risk.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from rich.console import Console

from ingest.contract import run_table_file
from models.anomaly import event_rate_anomalies
from models.early_warning import train_early_warning
from models.evaluation import failure_events, failure_labels
from models.features import ERRORS_COLUMNS, LINK_COLUMNS, Detections, Telemetry, build_features
from models.health import score_health
from models.holdout import Protocol
from models.link_events import link_incidents
from models.resets import detect_resets
from models.series import NS_PER_HOUR, NS_PER_S
from pipelines.lib.slos import load_health_policy

console = Console()


def timed(work: Callable[[], object]) -> tuple[object, float]:
    start = time.perf_counter()
    result = work()
    return result, time.perf_counter() - start


def line(name: str, rows: int, unit: str, seconds: float, ceiling_s: float, ceiling: str) -> None:
    console.print(
        f"{name}: {rows:,} {unit} in {seconds:.2f} s = {rows / seconds:,.0f} {unit}/s; ceiling ({ceiling}) "
        f"{rows / ceiling_s:,.0f} {unit}/s, ratio {ceiling_s / seconds:.4f}; load average {os.getloadavg()[0]:.2f}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="a `leo-fleet simulate` output directory")
    args = parser.parse_args(argv)
    console.print(f"load average at the start: {os.getloadavg()[0]:.2f}")
    telemetry = Telemetry.from_run_dir(args.run)
    controllers = telemetry.controllers()
    _, errors_s = timed(lambda: pq.read_table(run_table_file(args.run, "errors"), columns=list(ERRORS_COLUMNS)))
    _, link_s = timed(lambda: pq.read_table(run_table_file(args.run, "link"), columns=list(LINK_COLUMNS)))
    incidents, seconds = timed(lambda: link_incidents(telemetry.link, controllers))
    line("link drops", telemetry.link.num_rows, "link rows", seconds, link_s, "decoding the link columns")
    resets, seconds = timed(lambda: detect_resets(telemetry.errors, telemetry.link, controllers, link_drops=incidents))
    rows = telemetry.errors.num_rows + telemetry.link.num_rows
    line("resets", rows, "telemetry rows", seconds, errors_s + link_s, "decoding the errors and link columns")

    start_ns, end_ns = telemetry.span_ns()
    start_ns -= start_ns % NS_PER_HOUR
    detections = Detections(resets=resets, incidents=incidents)
    features, seconds = timed(
        lambda: build_features(telemetry, detections, controllers, start_ns=start_ns, end_ns=end_ns + 1)
    )
    hours = features.values.shape[0] * features.values.shape[1]
    _, ceiling_s = timed(lambda: np.nansum(features.values, axis=2))
    matrix = "one numpy pass over the feature matrix"
    line("window features", hours, "controller-hours", seconds, ceiling_s, matrix)
    _, seconds = timed(lambda: event_rate_anomalies(features))
    line("event-rate anomalies", hours, "controller-hours", seconds, ceiling_s, matrix)

    protocol = Protocol()
    codes, onsets = failure_events(pq.read_table(run_table_file(args.run, "truth_faults")), controllers)
    labels = failure_labels(
        codes,
        onsets,
        len(controllers),
        features.window_ends,
        horizon_ns=protocol.horizon_ns,
        min_lead_ns=int(protocol.min_lead_s * NS_PER_S),
    )
    first_half = features.window_ends + protocol.horizon_ns <= (start_ns + end_ns) // 2
    model, seconds = timed(
        lambda: train_early_warning(
            features,
            labels,
            np.ones(len(controllers), bool),
            first_half,
            choose_threshold=load_health_policy().alarm_threshold,
            seed=0,
        )
    )
    console.print(f"early warning, training (4-fold out-of-fold + final fit): {seconds:.1f} s")
    _, seconds = timed(lambda: model.risk(features))
    line("early warning, scoring", hours, "controller-hours", seconds, ceiling_s, matrix)
    _, seconds = timed(lambda: score_health(model, features).points)
    line("health score with its points", hours, "controller-hours", seconds, ceiling_s, matrix)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
