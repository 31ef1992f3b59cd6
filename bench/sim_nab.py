"""The latency detector on the simulator's own latency series, scored by NAB's harness (the same window method).

    .venv/bin/python -m bench.sim_nab                                  # 60 controllers x 48 h, acceleration 100
    .venv/bin/python -m bench.sim_nab --controllers 100 --hours 72 --acceleration 50 --seed 1

A seeded fleet is simulated; each controller's CXL read p99 per simulator interval (1 min), read from that
interval's merged histogram, becomes one NAB data file. Its labelled windows come from the simulator's truth table:
every CE storm, link degradation episode and link retrain of the controller (issue 13: storms, degradations,
retrains), each widened the way NAB sized its windows (10 % of the file's length shared among its events, centred
on the event, its own duration kept) and merged where they overlap. NAB's null detector (0.5 everywhere) is written
beside them for the normalisation. Then `nab_score.py score --nab <that corpus> --check-causality` scores
models.latency_detector.nab_detector (the onset score, as on NAB) with NAB's three profiles and prints its output,
after a line with the corpus' shape (files, windows, share of rows inside a window). Nothing here is tuned: the
detector is the one chosen on NAB; the truth only labels.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from bench.nab import DETECTOR, ROOT
from ingest.sim.config import SimConfig
from ingest.sim.simulator import Simulation
from models.histogram import with_quantiles
from models.rollup import rollup

FOLDER = "simulated"
LABELLED = ("ce_storm", "link_degradation", "link_retrain")
WINDOW_SHARE = 0.10  # NAB: the windows of a file together span 10 % of it


def p99_series(simulation: Simulation) -> tuple[pa.Table, pa.Table]:
    """(controller_id, window_start, p99_ns per interval of CXL reads; the truth rows of the labelled kinds)."""
    every_s = simulation.config.interval_s
    parts, truth = [], []
    for chunk in simulation.chunks():
        reads = chunk.latency.filter(
            pc.and_(pc.equal(chunk.latency["memory_tier"], "cxl"), pc.equal(chunk.latency["op"], "read"))
        )
        merged = with_quantiles(rollup(reads, every_s, ["controller_id"]), [0.99])
        parts.append(merged.select(["controller_id", "window_start", "p99_ns"]))
        truth.append(chunk.truth.filter(pc.is_in(chunk.truth["kind"].cast(pa.string()), pa.array(LABELLED))))
    series = pa.concat_tables(parts)
    return series.cast(series.schema.set(0, pa.field("controller_id", pa.string()))), pa.concat_tables(truth)


def windows(times_ns: np.ndarray, events: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """NAB-sized windows around `events` ((onset, end) ns) as (first, last) rows of the file, merged where they
    overlap (NAB's boundaries are rows of the file)."""
    if not events:
        return []
    half = WINDOW_SHARE * (times_ns[-1] - times_ns[0]) / len(events) / 2
    spans = sorted((on - half, max(end, on) + half) for on, end in events)
    rows = [(int(np.searchsorted(times_ns, a)), int(np.searchsorted(times_ns, b, side="right")) - 1) for a, b in spans]
    merged: list[list[int]] = []
    for first, last in rows:
        if last <= first:  # outside the file, or narrower than two rows
            continue
        if merged and first <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], last)
        else:
            merged.append([first, last])
    return [(a, b) for a, b in merged]


def stamp(ns: np.ndarray) -> np.ndarray:
    return np.datetime_as_string(ns.astype("datetime64[ns]").astype("datetime64[s]")).astype(object)


def write_corpus(root: Path, series: pa.Table, truth: pa.Table, nab: Path) -> tuple[int, int, float]:
    """A NAB-format corpus under `root`: (files, windows, share of rows inside a window)."""
    (root / "data" / FOLDER).mkdir(parents=True)
    (root / "results" / "null" / FOLDER).mkdir(parents=True)
    (root / "labels").mkdir()
    (root / "config").mkdir()
    (root / "config" / "profiles.json").write_text((nab / "corpus" / "config" / "profiles.json").read_text())
    labels, inside, rows = {}, 0, 0
    onset = truth["onset_ts"].cast(pa.int64()).to_numpy()
    end = truth["end_ts"].cast(pa.int64()).fill_null(np.iinfo(np.int64).max).to_numpy()
    owner = np.asarray(truth["controller_id"].cast(pa.string()).to_pylist(), dtype=object)
    for controller in sorted(pc.unique(series["controller_id"]).to_pylist()):
        mine = series.filter(pc.equal(series["controller_id"], controller)).sort_by("window_start")
        times = mine["window_start"].cast(pa.int64()).to_numpy()
        values = mine["p99_ns"].to_numpy(zero_copy_only=False)
        found = windows(times, list(zip(onset[owner == controller], end[owner == controller], strict=True)))
        name = f"{FOLDER}/{controller}.csv"
        stamps = stamp(times)
        labels[name] = [[stamps[a], stamps[b]] for a, b in found]
        text = "".join(f"{t},{v:.1f}\n" for t, v in zip(stamps, values, strict=True))
        (root / "data" / name).write_text("timestamp,value\n" + text)
        null = "".join(f"{t},{v:.1f},0.5,0\n" for t, v in zip(stamps, values, strict=True))
        (root / "results" / "null" / FOLDER / f"null_{controller}.csv").write_text(
            "timestamp,value,anomaly_score,label\n" + null
        )
        inside += sum(b - a + 1 for a, b in found)
        rows += times.size
    (root / "labels" / "combined_windows.json").write_text(json.dumps(labels, indent=1))
    return len(labels), sum(len(w) for w in labels.values()), inside / max(rows, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--controllers", type=int, default=60)
    parser.add_argument("--hours", type=float, default=48.0)
    parser.add_argument("--acceleration", type=float, default=100.0, help="the simulator's fault acceleration")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--nab", type=Path, default=ROOT.parent / "shared" / "nab", help="folder of nab_score.py")
    args = parser.parse_args(argv)
    print(f"detector: {DETECTOR}", flush=True)
    config = SimConfig(
        controllers=args.controllers, hours=args.hours, fault_acceleration=args.acceleration, seed=args.seed
    )
    load_before, start = os.getloadavg()[0], time.perf_counter()
    series, truth = p99_series(Simulation(config))
    with tempfile.TemporaryDirectory(prefix="sim-nab-") as directory:
        files, count, share = write_corpus(Path(directory), series, truth, args.nab)
        print(
            f"corpus: {files} controllers x {args.hours:g} h of 1-min CXL read p99, "
            f"acceleration {args.acceleration:g}, seed {args.seed}: {count} windows ({', '.join(LABELLED)}), "
            f"{share:.1%} of rows inside one",
            flush=True,
        )
        command = [sys.executable, str(args.nab / "nab_score.py"), "--nab", directory, "score"]
        command += ["--detector", DETECTOR, "--pythonpath", str(ROOT), "--subset", "ALL", "--check-causality"]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    print(done.stdout, end="")
    if done.returncode:
        print(done.stderr, end="", file=sys.stderr)
    seconds = time.perf_counter() - start
    print(f"wall {seconds:.0f} s, load {load_before:.1f} -> {os.getloadavg()[0]:.1f}")
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
