"""Scale benchmark: wall time, rows/s and peak RSS of every stage, simulate → load → every asset → report.

    .venv/bin/python -m bench.scale_memory --controllers 1000                       # a 1,000-controller week
    .venv/bin/python -m bench.scale_memory --controllers 1000 5000 10000            # and the growth ratios
    .venv/bin/python -m bench.scale_memory --controllers 1000 --ceiling /work/main/.venv/bin/leo-fleet

For each fleet size, in a fresh data directory under --dir (deleted afterwards): `leo-fleet simulate` writes a
seeded run directory, `leo-fleet load` loads it, each stage of `pipelines.materialize.stages` (the hourly marts as a
backfill over the span in runs of HOURS_PER_RUN hours, the fitted models, the scores, the daily assets) materializes
over the whole span, and `leo-fleet report --period week` writes the last day's week. Every stage is a process of
its own: its wall time and its own peak RSS come from `os.wait4`'s rusage. rows/s is the run's raw telemetry rows
over the stage's seconds, for every stage, so stages compare. With --ceiling CLI, that `leo-fleet` (e.g. the
previous release's venv) loads the same run directory into a second lake in the same run: the figure printed is this
load's rate over the ceiling's and both peak RSS. With several sizes, the growth ratios (largest ÷ smallest) of time
and peak RSS per stage are printed beside the ratio of controllers. Acceptance (issue 20): every stage ≤ 4 GiB peak
RSS, time at 10k ÷ at 1k ≤ 11×, the load ≤ 2 GiB at ≥ 80 % of the ceiling's rate. Figures vary with machine load:
the 1-minute load average before and after each stage is printed beside it, and each stage's CPU seconds (user +
system, from the same rusage), which a shared machine's load stretches far less than wall time.

A 10,000-controller week outlasts one working session, so --keep runs each size in a named directory under --dir
(`scale-<controllers>x<hours>h`), records each finished stage's figures there (`stages.jsonl`) and, run again, skips
the stages already measured and starts the interrupted one again: a simulation or load cut short is deleted and
rerun from its beginning; an asset stage resumes at the first run of its backfill that had not finished (each
finished run is recorded in `stage-<i>.progress` with the process's seconds, CPU seconds and peak RSS so far), and
its figures are then the sums of the processes that ran it (seconds, CPU seconds; a run cut short is not counted)
and the largest of their peaks. The directory stays until deleted by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ingest.contract import RUN_DESCRIPTION, TABLE_NAMES
from ingest.sim.config import SimConfig
from pipelines.lib.partitions import Window

SEED = 20
GIB = 1024**3
RSS_TARGET = 4 * GIB
LOAD_RSS_TARGET = 2 * GIB
LOAD_RATE_TARGET = 0.8  # of the ceiling's
GROWTH_TARGET = 11.0  # time at 10k ÷ at 1k controllers
BENCH_STAGE = [sys.executable, "-m", "bench.scale_memory", "--asset-stage"]
SEGMENT_ENV = "LEO_FLEET_BENCH_SEGMENT"  # names the process running an asset stage in its progress lines
console = Console(stderr=True, width=240)  # stage labels name their assets: one line each


@dataclass(frozen=True)
class StageFigures:
    name: str
    seconds: float
    cpu_seconds: float  # user + system of the stage's process and its threads
    peak_rss: int  # bytes
    load_before: float
    load_after: float


def run_child(name: str, command: list[str], env: dict[str, str], log: Path) -> StageFigures:
    """`command` as a child process; its wall time and its own peak RSS (wait4's rusage, not the children's max)."""
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    with log.open("w") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{name} failed (exit {process.returncode}); its output: {log}")
    cpu_seconds = usage.ru_utime + usage.ru_stime
    figures = StageFigures(name, seconds, cpu_seconds, usage.ru_maxrss * 1024, load_before, os.getloadavg()[0])
    console.print(
        f"  {name}: {seconds:.1f} s, {cpu_seconds:.1f} CPU s, peak RSS {figures.peak_rss / GIB:.2f} GiB "
        f"(load {load_before:.1f})"
    )
    return figures


class StageLog:
    """The figures of the stages a kept run directory has finished, one JSON line each, so a run resumes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        lines = path.read_text().splitlines() if path.exists() else []
        self.done = {f.name: f for f in (StageFigures(**json.loads(line)) for line in lines)}

    def run(
        self,
        name: str,
        command: list[str],
        env: dict[str, str],
        log: Path,
        partial: Path | None = None,
        progress: Path | None = None,
    ) -> StageFigures:
        """The stage's figures: recorded ones if it finished before, else a fresh run (`partial`, what an
        interrupted run of it left, deleted first) or, for an asset stage, the rest of one (`progress`, its finished
        runs: the figures of the processes that ran them are added)."""
        if name in self.done:
            console.print(f"  {name}: measured before, kept")
            return self.done[name]
        if partial is not None and partial.exists():
            shutil.rmtree(partial)
        segment = uuid.uuid4().hex
        figures = run_child(name, command, {**env, SEGMENT_ENV: segment}, log)
        if progress is not None and (whole := with_earlier_segments(figures, progress, segment)) != figures:
            console.print(
                f"  {name}, with the processes that ran its earlier runs: {whole.seconds:.1f} s, "
                f"{whole.cpu_seconds:.1f} CPU s, peak RSS {whole.peak_rss / GIB:.2f} GiB"
            )
            figures = whole
        with self.path.open("a") as out:
            out.write(json.dumps(asdict(figures)) + "\n")
        self.done[name] = figures
        return figures


def with_earlier_segments(figures: StageFigures, progress: Path, segment: str) -> StageFigures:
    """`figures` of the process that finished an asset stage, plus the processes before it that ran part of it
    (their last progress line each): seconds and CPU seconds added, the largest peak RSS."""
    lines = [json.loads(line) for line in progress.read_text().splitlines()] if progress.exists() else []
    earlier = {line["segment"]: line for line in lines if line["segment"] != segment}.values()
    return replace(
        figures,
        seconds=figures.seconds + sum(line["seconds"] for line in earlier),
        cpu_seconds=figures.cpu_seconds + sum(line["cpu_seconds"] for line in earlier),
        peak_rss=max([figures.peak_rss, *(line["peak_rss"] for line in earlier)]),
    )


def asset_stage(index: int, start: datetime, hours: float, progress: Path) -> None:
    """Inside a child process: stage `index` of pipelines.materialize.stages over the span, on the environment's
    lake (LEO_FLEET_DATA_DIR), one run of its backfill at a time, skipping the runs `progress` records as finished
    and recording each one it finishes with this process's figures so far."""
    import dagster as dg

    from pipelines.definitions import defs
    from pipelines.lib.resources import LakeResource
    from pipelines.materialize import run_stage, stages

    started = time.perf_counter()
    definitions = defs()
    stage = stages(definitions)[index]
    span = Window(start, start + timedelta(hours=hours))
    lake = LakeResource.from_environment(data_dir=os.environ["LEO_FLEET_DATA_DIR"])
    lines = progress.read_text().splitlines() if progress.exists() else []
    finished = {tuple(json.loads(line)["range"]) for line in lines}
    ranges = stage.runs(stage.partition_keys(span)) if stage.partitions_def is not None else [[]]
    for keys in ranges:
        if keys and (keys[0], keys[-1]) in finished:
            continue
        part = span
        if keys:
            first, last = (Window.of_partition(stage.partitions_def, key) for key in (keys[0], keys[-1]))
            part = Window(first.start, last.end)
        run_stage(definitions, lake, stage, part, dg.DagsterInstance.ephemeral())
        usage = resource.getrusage(resource.RUSAGE_SELF)
        line = {
            "range": [keys[0], keys[-1]] if keys else [],
            "segment": os.environ.get(SEGMENT_ENV, ""),
            "seconds": time.perf_counter() - started,
            "cpu_seconds": usage.ru_utime + usage.ru_stime,
            "peak_rss": usage.ru_maxrss * 1024,
        }
        with progress.open("a") as out:
            out.write(json.dumps(line) + "\n")


def stage_labels() -> list[str]:
    from pipelines.definitions import defs
    from pipelines.materialize import stages

    return [stage.label for stage in stages(defs())]


def leo_fleet(cli: str | None) -> list[str]:
    return [cli] if cli else [sys.executable, "-c", "import sys; from pipelines.cli import main; sys.exit(main())"]


def measure(
    controllers: int, hours: float, root: Path, ceiling: str | None, keep: bool
) -> tuple[int, list[StageFigures]]:
    """Every stage of one fleet size; returns the raw telemetry rows and the stages' figures."""
    config = SimConfig(controllers=controllers, hours=hours, seed=SEED)
    console.rule(f"{controllers:,} controllers x {hours:g} h")
    if keep:
        work = root / f"scale-{controllers}x{hours:g}h"
        work.mkdir(exist_ok=True)
    else:
        work = Path(tempfile.mkdtemp(prefix=f"scale-{controllers}-", dir=root))
    stages = StageLog(work / "stages.jsonl")
    try:
        run_dir, data_dir = work / "run", work / "data"
        env = {**os.environ, "LEO_FLEET_DATA_DIR": str(data_dir)}
        simulate = [*leo_fleet(None), "simulate", "--controllers", str(controllers), "--hours", f"{hours:g}"]
        simulate += ["--seed", str(SEED), "--out", str(run_dir)]
        figures = [stages.run("simulate", simulate, env, work / "simulate.log", partial=run_dir)]
        written = json.loads((run_dir / RUN_DESCRIPTION).read_text())["rows"]
        rows = sum(written[name] for name in TABLE_NAMES.values())
        load = [*leo_fleet(None), "load", str(run_dir)]
        figures.append(stages.run("load", load, env, work / "load.log", partial=data_dir))
        if ceiling:
            ceiling_env = {**env, "LEO_FLEET_DATA_DIR": str(work / "ceiling")}
            load = [*leo_fleet(ceiling), "load", str(run_dir)]
            figures.append(stages.run("load (ceiling)", load, ceiling_env, work / "ceiling.log", work / "ceiling"))
            shutil.rmtree(work / "ceiling", ignore_errors=True)
        start = config.start.isoformat()
        for index, label in enumerate(stage_labels()):
            progress = work / f"stage-{index}.progress"
            command = [*BENCH_STAGE, str(index), "--start", start, "--hours", f"{hours:g}", "--progress", str(progress)]
            figures.append(stages.run(label, command, env, work / f"stage-{index}.log", progress=progress))
        last_day = (config.start + timedelta(hours=hours) - timedelta(seconds=1)).date().isoformat()
        report = [*leo_fleet(None), "report", "--date", last_day, "--period", "week"]
        figures.append(stages.run("report", report, env, work / "report.log"))
        return rows, figures
    finally:
        if not keep:
            shutil.rmtree(work)


def print_size(controllers: int, rows: int, figures: list[StageFigures]) -> None:
    table = Table(title=f"{controllers:,} controllers: {rows:,} raw telemetry rows")
    for column in ("stage", "s", "CPU s", "rows/s", "peak RSS GiB", "≤ 4 GiB", "load before-after"):
        table.add_column(column, justify="left" if column == "stage" else "right")
    for f in figures:
        ok = "yes" if f.peak_rss <= RSS_TARGET else "NO"
        table.add_row(
            f.name,
            f"{f.seconds:.1f}",
            f"{f.cpu_seconds:.1f}",
            f"{rows / f.seconds:,.0f}",
            f"{f.peak_rss / GIB:.2f}",
            ok,
            f"{f.load_before:.1f}-{f.load_after:.1f}",
        )
    console.print(table)
    by_name = {f.name: f for f in figures}
    if "load (ceiling)" in by_name:
        load, ceiling = by_name["load"], by_name["load (ceiling)"]
        ratio = ceiling.seconds / load.seconds
        console.print(
            f"load: {rows / load.seconds:,.0f} rows/s at {load.peak_rss / GIB:.2f} GiB peak RSS; ceiling "
            f"{rows / ceiling.seconds:,.0f} rows/s at {ceiling.peak_rss / GIB:.2f} GiB: rate {ratio:.2f}x the "
            f"ceiling's (target >= {LOAD_RATE_TARGET:.0%}), peak RSS target <= {LOAD_RSS_TARGET / GIB:.0f} GiB"
        )


def print_growth(results: dict[int, tuple[int, list[StageFigures]]]) -> None:
    small, large = min(results), max(results)
    table = Table(title=f"Growth, {large:,} ÷ {small:,} controllers ({large / small:.1f}x the fleet)")
    for column in ("stage", "time ratio", "CPU time ratio", f"≤ {GROWTH_TARGET:g}x", "peak RSS ratio"):
        table.add_column(column, justify="left" if column == "stage" else "right")
    before = {f.name: f for f in results[small][1]}
    for f in results[large][1]:
        if f.name in before:
            time_ratio = f.seconds / before[f.name].seconds
            cpu_ratio = f.cpu_seconds / before[f.name].cpu_seconds
            ok = "yes" if max(time_ratio, cpu_ratio) <= GROWTH_TARGET else "NO"
            rss_ratio = f.peak_rss / before[f.name].peak_rss
            table.add_row(f.name, f"{time_ratio:.2f}", f"{cpu_ratio:.2f}", ok, f"{rss_ratio:.2f}")
    console.print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--controllers", type=int, nargs="+", default=[1000])
    parser.add_argument("--hours", type=float, default=168.0, help="simulated span (default a week)")
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()), help="where the runs are written")
    parser.add_argument("--ceiling", help="another leo-fleet executable whose `load` is the load's ceiling")
    parser.add_argument("--keep", action="store_true", help="keep each size's run under --dir and resume it")
    parser.add_argument("--asset-stage", type=int, help=argparse.SUPPRESS)  # the child process of one asset stage
    parser.add_argument("--start", type=datetime.fromisoformat, help=argparse.SUPPRESS)
    parser.add_argument("--progress", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.asset_stage is not None:
        asset_stage(args.asset_stage, args.start, args.hours, args.progress)
        return 0
    args.dir.mkdir(parents=True, exist_ok=True)
    results = {n: measure(n, args.hours, args.dir, args.ceiling, args.keep) for n in args.controllers}
    for controllers, (rows, figures) in results.items():
        print_size(controllers, rows, figures)
    if len(results) > 1:
        print_growth(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
