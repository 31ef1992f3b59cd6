"""Scale benchmark: N `leo-fleet ingest` loaders in one consumer group on one lake (PostgreSQL catalog + S3 data).

    .venv/bin/python -m bench.scale                                   # 1, 2 and 4 loaders, 2,000 controllers x 6 h
    .venv/bin/python -m bench.scale --loaders 1,2 --controllers 1000 --hours 6

All in one run, every server on a free 127.0.0.1 port and stopped at the end: a broker of its own, a throw-away
PostgreSQL cluster (tests/postgres.py) for the DuckLake catalogs and a SeaweedFS S3 server (tests/s3.py) for the
Parquet files. The simulation is published once; then for each N a fresh lake (a new database, a new bucket prefix)
and a fresh consumer group, N `leo-fleet ingest --until-idle --json` processes started together. Measured per N:
wall time from the first start to the last exit, rows/s in total (over the wall time, and from the first commit to
the last) and per loader (each loader's final JSON status), the CPU seconds each loader got (its rusage, from wait4)
and its peak RSS (VmHWM, sampled), commit retries per 1,000 commits and how many of them ran again whole (commits:
catalog snapshots made during the run). The ceiling is the same run's single loader: the ratios printed are total
rows/s with N loaders / with 1 loader. After each N: stored rows == produced, no natural key twice. Wall time
includes interpreter start-up, the group join and --idle-seconds of quiet before the exit. Loaders still running
after --timeout are killed and that N is marked TIMED OUT (the run goes on).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ingest.kafka import broker
from ingest.kafka.publish import publish_simulation
from ingest.settings import KafkaSettings, Settings, restrict_new_files
from ingest.sim.config import SimConfig
from ingest.sim.simulator import Simulation
from tests.ingest.kafka.helpers import CLI, cli_env, create_tables, duplicates, stored_rows
from tests.postgres import PostgresServer, postgres_server
from tests.s3 import S3Server, s3_server

IDLE_S = 1.0
TELEMETRY_INTERVAL_S = 10
console = Console(stderr=True)


@dataclass
class LoaderRun:
    process: subprocess.Popen
    stdout: Path
    stderr: Path
    exited_at: float | None = None
    exit_code: int | None = None
    cpu_s: float = 0.0
    peak_rss_kb: int = 0
    final: dict = field(default_factory=dict)

    def _lines(self) -> list[str]:
        return self.stdout.read_text(errors="replace").splitlines() if self.stdout.exists() else []

    def statuses(self) -> list[dict]:
        return list(_parsed(self._lines()))

    def last_status(self) -> dict:
        """The latest status line; read every 50 ms while the loaders run, so parsed from the end."""
        return next(_parsed(reversed(self._lines())), {})

    def commits(self) -> list[tuple[datetime, int]]:
        """(time of its latest commit, rows committed by then), from each status line printed after a commit."""
        return [
            (datetime.fromisoformat(status["last_commit_at"]), status["rows_total"])
            for status in self.statuses()
            if status.get("last_commit_at")
        ]


def _parsed(lines: Iterable[str]) -> Iterator[dict]:
    """The JSON status lines, skipping one cut short by a kill or still being written."""
    for line in lines:
        try:
            yield json.loads(line)
        except json.JSONDecodeError:
            continue


def main() -> int:
    restrict_new_files()  # an entry point: the lake and files it writes are its user's alone
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loaders", default="1,2,4", help="comma-separated loader counts (default 1,2,4)")
    parser.add_argument("--controllers", type=int, default=2000)
    parser.add_argument("--hours", type=float, default=6.0)
    parser.add_argument(
        "--flush-rows", type=int, default=100_000, help="each loader's --flush-rows (default 100,000; CLI: 500,000)"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--timeout", type=float, default=120.0, help="seconds before the loaders still running are killed (per N)"
    )
    args = parser.parse_args()
    counts = sorted({int(n) for n in args.loaders.split(",") if n.strip()})
    if not counts or min(counts) < 1:
        parser.error("--loaders takes positive integers, e.g. 1,2,4")
    config = SimConfig(controllers=args.controllers, hours=args.hours, seed=args.seed)
    results: dict[int, dict] = {}
    with tempfile.TemporaryDirectory(prefix="leo-bench-scale-") as scratch, ExitStack() as servers:
        home = Path(scratch)
        console.print("starting PostgreSQL and SeaweedFS S3 on 127.0.0.1 …")
        postgres = servers.enter_context(postgres_server())
        s3 = servers.enter_context(s3_server())
        base = Settings(
            kafka=KafkaSettings(bootstrap_servers=f"127.0.0.1:{broker.free_port()}", consumer_group="bench-scale"),
            s3=Settings.from_env(s3.env()).s3,  # the server's endpoint, path style, no TLS, its key
        ).with_data_dir(home / "data")
        broker.start(base)
        servers.callback(broker.stop, base)
        publish_lake, _ = _fresh_lake(base, postgres, s3, "publish")
        console.print(f"publishing {config.controllers:,} controllers x {config.hours:g} h …")
        published = publish_simulation(publish_lake, Simulation(config))
        console.print(
            f"published {published.rows:,} rows in {published.messages:,} messages, {published.seconds:.1f} s"
        )
        for n in counts:
            results[n] = _run(n, base, postgres, s3, published.rows, home / f"n{n}", args.flush_rows, args.timeout)
    _print(results, config, published.rows, args.flush_rows)
    failed = [n for n, r in results.items() if not r["exact"]]
    return 1 if failed else 0


def _fresh_lake(base: Settings, postgres: PostgresServer, s3: S3Server, name: str) -> tuple[Settings, str]:
    """A new catalog database and a new bucket prefix; the raw tables created before any loader starts."""
    database = postgres.create_database(f"scale_{name}")
    settings = Settings(
        data_dir=base.data_dir,
        kafka=base.kafka,
        s3=base.s3,
        lake_catalog=postgres.catalog(database),
        lake_data_path=s3.data_path(f"{name}-{uuid.uuid4().hex[:8]}"),
    )
    create_tables(settings)
    return settings, database


def _snapshots(postgres: PostgresServer, database: str) -> int:
    """DuckLake snapshots in the catalog: one per committed transaction."""
    return int(postgres.psql("SELECT count(*) FROM ducklake_snapshot", database))


def _run(
    n: int,
    base: Settings,
    postgres: PostgresServer,
    s3: S3Server,
    produced: int,
    logs: Path,
    flush_rows: int,
    timeout_s: float,
) -> dict:
    logs.mkdir(parents=True)
    settings, database = _fresh_lake(base, postgres, s3, f"n{n}")
    group = f"bench-scale-{n}-{uuid.uuid4().hex[:6]}"
    env = {**cli_env(settings), "LEO_FLEET_CONSUMER_GROUP": group}
    snapshots_before = _snapshots(postgres, database)
    args = [*CLI, "ingest", "--until-idle", "--json", "--idle-seconds", f"{IDLE_S:g}", "--flush-rows", str(flush_rows)]
    loaders: list[LoaderRun] = []
    started = time.monotonic()
    try:
        for i in range(n):
            out, err = logs / f"loader-{i}.jsonl", logs / f"loader-{i}.log"
            with open(out, "wb") as stdout, open(err, "wb") as stderr:
                loaders.append(LoaderRun(subprocess.Popen(args, env=env, stdout=stdout, stderr=stderr), out, err))
        timed_out = _wait(loaders, produced, n, started, timeout_s)
    finally:
        for loader in loaders:
            if loader.exited_at is None:
                loader.process.kill()  # by pid; reaped below
                _reap(loader, block=True)
    if timed_out:
        kept = Path(tempfile.mkdtemp(prefix=f"leo-bench-scale-n{n}-logs-"))
        shutil.copytree(logs, kept, dirs_exist_ok=True)  # the scratch dir goes at the end; the logs stay
        console.print(f"[red]N={n}: loaders still running after {timeout_s:g} s, killed[/red] (logs kept in {kept})")
    wall_s = max(loader.exited_at for loader in loaders) - started  # with a timeout: up to the kill
    for i, loader in enumerate(loaders):
        loader.final = loader.last_status()
        if not timed_out and (loader.exit_code != 0 or not loader.final):
            tail = loader.stderr.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"N={n}: loader {i} exited with {loader.exit_code}:\n{tail}")
    commits = _snapshots(postgres, database) - snapshots_before
    steady_rate = _rate_between_commits(loaders)
    stored = stored_rows(settings)
    dupes = sum(duplicates(settings).values())
    exact = stored == produced and dupes == 0 and not timed_out
    console.print(
        f"N={n}: {wall_s:.1f} s; stored {stored:,} of {produced:,} produced, {dupes:,} duplicates: "
        + ("[green]exactly once[/green]" if exact else "[red]NOT exactly once / incomplete[/red]")
    )
    return {
        "timed_out": timed_out,
        "wall_s": wall_s,
        "loaders": loaders,
        "commits": commits,
        "steady_rate": steady_rate,
        "stored": stored,
        "exact": exact,
    }


def _rate_between_commits(loaders: list[LoaderRun]) -> float | None:
    """Rows/s from the earliest first commit seen to the latest last commit: the same rows without the start-up,
    the group join and the idle wait before exit, which dominate the wall time of a short run. The rows the
    earliest loader had committed by then are left out; every other loader's rows count (its own start-up is
    inside the window)."""
    points = [loader.commits() for loader in loaders]
    if not all(points):
        return None
    first_at, first_rows = min(commits[0] for commits in points)
    last_at = max(commits[-1][0] for commits in points)
    seconds = (last_at - first_at).total_seconds()
    rows = sum(commits[-1][1] for commits in points) - first_rows
    return rows / seconds if seconds > 0 else None


def _wait(loaders: list[LoaderRun], produced: int, n: int, started: float, timeout_s: float) -> bool:
    """Reap each loader as it exits (its rusage: CPU and peak RSS), a progress bar of committed rows on stderr."""
    columns = (TextColumn(f"N={n} loaders"), BarColumn(), TextColumn("{task.completed:,.0f}/{task.total:,} rows"))
    with Progress(*columns, TimeElapsedColumn(), console=console, transient=True) as progress:
        task = progress.add_task("load", total=produced)
        while any(loader.exited_at is None for loader in loaders):
            if time.monotonic() - started > timeout_s:
                return True
            for loader in loaders:
                if loader.exited_at is None:
                    _sample_peak_rss(loader)
                    _reap(loader, block=False)
            rows = sum(loader.last_status().get("rows_total", 0) for loader in loaders)
            progress.update(task, completed=rows)
            time.sleep(0.05)
    return False


def _sample_peak_rss(loader: LoaderRun) -> None:
    """VmHWM, the process's own peak RSS (wait4's ru_maxrss would carry this process's peak over the fork)."""
    try:
        status = Path(f"/proc/{loader.process.pid}/status").read_text()
    except OSError:
        return
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            loader.peak_rss_kb = max(loader.peak_rss_kb, int(line.split()[1]))


def _reap(loader: LoaderRun, block: bool) -> None:
    pid, status, usage = os.wait4(loader.process.pid, 0 if block else os.WNOHANG)
    if pid == 0:
        return
    loader.exited_at = time.monotonic()
    loader.exit_code = os.waitstatus_to_exitcode(status)
    loader.process.returncode = loader.exit_code  # reaped here, not by Popen
    loader.cpu_s = usage.ru_utime + usage.ru_stime


def _rate(rows_per_s: float | None) -> str:
    return "-" if rows_per_s is None else f"{rows_per_s:,.0f}"


def _ratio(rate: float | None, ceiling: float | None) -> str:
    return "-" if rate is None or not ceiling else f"{rate / ceiling:.2f}x"


def _print(results: dict[int, dict], config: SimConfig, produced: int, flush_rows: int) -> None:
    table = Table(
        title=f"Loaders on PostgreSQL + S3, {config.controllers:,} controllers x {config.hours:g} h, {produced:,} rows"
    )
    for column in (
        "loaders",
        "wall s",
        "total rows/s",
        "vs 1 loader",
        "rows/s between commits",
        "vs 1 loader ",
        "loader",
        "rows",
        "rows/s",
        "CPU s",
        "CPU %",
        "peak RSS MB",
        "commit retries",
        "of them run again whole",
        "retries / 1,000 commits",
    ):
        table.add_column(column, justify="left" if column == "loader" else "right")
    one = results.get(1)
    rate_one = produced / one["wall_s"] if one else None
    steady_one = one["steady_rate"] if one else None
    for n, result in results.items():
        wall_s = result["wall_s"]
        total_rate = result["stored"] / wall_s
        retries = sum(loader.final.get("lake_commit_retries", 0) for loader in result["loaders"])
        per_1000 = f"{retries * 1000 / result['commits']:,.1f}" if result["commits"] else "-"
        for i, loader in enumerate(result["loaders"]):
            rows = loader.final.get("rows_total", 0)
            first = i == 0
            table.add_row(
                (f"{n} TIMED OUT" if result["timed_out"] else str(n)) if first else "",
                f"{wall_s:,.1f}" if first else "",
                f"{total_rate:,.0f}" if first else "",
                (f"{total_rate / rate_one:.2f}x" if rate_one else "-") if first else "",
                _rate(result["steady_rate"]) if first else "",
                _ratio(result["steady_rate"], steady_one) if first else "",
                f"#{i}",
                f"{rows:,}",
                f"{rows / wall_s:,.0f}",
                f"{loader.cpu_s:,.1f}",
                f"{loader.cpu_s / wall_s:.0%}",
                f"{loader.peak_rss_kb / 1024:,.0f}",
                f"{loader.final.get('lake_commit_retries', 0):,}",
                f"{loader.final.get('lake_commit_conflicts', 0):,}",
                f"{per_1000} ({result['commits']:,} commits)" if first else "",
            )
        table.add_section()
    Console(width=max(Console().width, 170)).print(table)
    print(
        f"cores: {os.cpu_count()}; wall time = first start to last exit, incl. start-up, group join, {IDLE_S:g} s idle;"
        " between commits = from the first commit to the last (start-up and the idle wait before exit left out)"
    )
    for n, result in results.items():
        if n != 1 and rate_one:
            cpu = ", ".join(f"{loader.cpu_s:.1f}" for loader in result["loaders"])
            ratio = result["stored"] / result["wall_s"] / rate_one
            print(
                f"ratio total rows/s with {n} loaders / with 1 loader: {ratio:.2f}x wall,"
                f" {_ratio(result['steady_rate'], steady_one)} between commits"
                f" (target with 2: >= 1.6x where the machine has the cores); CPU s per loader: {cpu}"
            )
    if rate_one:
        per_controller = produced / (config.controllers * config.hours * 3600 / TELEMETRY_INTERVAL_S)
        fleet = rate_one * TELEMETRY_INTERVAL_S / per_controller
        print(
            f"one loader at {rate_one:,.0f} rows/s sustains {fleet:,.0f} controllers at a {TELEMETRY_INTERVAL_S} s "
            f"interval ({per_controller:,.1f} rows per controller per {TELEMETRY_INTERVAL_S} s)"
        )
    bad = [n for n, result in results.items() if not result["exact"]]
    print("exactly once: " + ("every N" if not bad else f"FAILED for N = {bad}"))


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally blocks: stop every server we started
    sys.exit(main())
