"""The latency detector on NAB: labelled real series nobody on this project wrote, scored by NAB's method.

    .venv/bin/python -m bench.nab                    # the whole corpus, all three profiles, causality checked
    .venv/bin/python -m bench.nab --per-file         # and the standard profile's raw score per file
    .venv/bin/python -m bench.nab --nab /path/to/nab # a harness folder elsewhere (default ../shared/nab)

The first line printed is `detector: MODULE:FUNC`, the function handed to the harness as `--detector`
(models.latency_detector.nab_detector: timestamps and values of one file in, an onset score in [0, 1] per row
out). Then the harness (`nab_score.py score --check-causality`, run with this venv's python) prints its own
output unchanged: the causality line, the three profiles with their swept thresholds, and its table of NAB's
published detectors on the same files with this one ranked among them. Last, a summary of the three profiles
against issue 13's acceptance (standard >= 60, reward_low_FP >= 45), the wall time and the load average. The
corpus is the detector's development set (docs/detector_quality.md): the figures are optimistic.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

DETECTOR = "models.latency_detector:nab_detector"
ROOT = Path(__file__).resolve().parent.parent
ACCEPTANCE = {"standard": 60.0, "reward_low_FP_rate": 45.0}
console = Console()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nab", type=Path, default=ROOT.parent / "shared" / "nab", help="folder of nab_score.py")
    parser.add_argument("--per-file", action="store_true", help="the standard profile's raw score per file")
    args = parser.parse_args(argv)
    harness = args.nab / "nab_score.py"
    if not harness.exists():
        parser.error(f"no NAB harness at {harness}")
    print(f"detector: {DETECTOR}", flush=True)
    command = [sys.executable, str(harness), "score", "--detector", DETECTOR, "--pythonpath", str(ROOT)]
    command += ["--check-causality"] + (["--per-file"] if args.per_file else [])
    load_before, start = os.getloadavg()[0], time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds, load_after = time.perf_counter() - start, os.getloadavg()[0]
    print(done.stdout, end="")
    if done.returncode:
        print(done.stderr, end="", file=sys.stderr)
        return done.returncode
    scores = {name: float(value) for name, value in re.findall(r"(\w+) (-?[\d.]+) \(threshold", done.stdout)}
    summary = Table(title=f"{DETECTOR} on {args.nab} (development set: optimistic)")
    for column in ("profile", "score", "acceptance", "met"):
        summary.add_column(column, justify="left" if column == "profile" else "right")
    for profile, score in scores.items():
        floor = ACCEPTANCE.get(profile)
        met = "—" if floor is None else ("yes" if score >= floor else "NO")
        summary.add_row(profile, f"{score:.2f}", "—" if floor is None else f">= {floor:.0f}", met)
    console.print(summary)
    console.print(
        f"{seconds:.1f} s wall, harness included; load average {load_before:.2f} before, {load_after:.2f} after"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
