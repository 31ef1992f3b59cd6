"""Benchmark of the host collector: RSS and CPU of `leo-fleet collect` on a fake host with 8 CXL devices.

    .venv/bin/python -m bench.collect                          # 120 s at a 10 s interval, 10 events/s
    .venv/bin/python -m bench.collect --seconds 600 --events-per-s 50

The host: a fake sysfs tree of 8 memdevs, each under its own root port, built with the collector tests' fixture
builders (tests/ingest/collect/fixtures.py), and a `cxl monitor` log that a writer thread appends events to (the
fixtures' seven event kinds, round robin over the 8 devices). The agent runs as a host runs it, as its own
`leo-fleet collect` process following the log and polling sysfs, against a local broker of its own (free port).
Its RSS and CPU time (user + system, from /proc via psutil) are sampled every 0.5 s. CPU is given over the whole
run and in steady state (from the end of the first poll on, start-up imports excluded). In the same run, the
floor: the RSS of an idle interpreter that imported what the agent imports. Acceptance (issue 17): < 100 MiB RSS
and < 5 % of one core. Figures vary with machine load: read the load averages beside them.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
from rich.console import Console
from rich.table import Table

from ingest.kafka import broker
from ingest.settings import KafkaSettings, Settings, restrict_new_files
from pipelines.cli.errors import OneLineArgumentParser, number
from tests.ingest.collect import fixtures as fx

DEVICES = 8
MAX_RSS_MIB = 100.0
MAX_CPU_PCT = 5.0
SAMPLE_S = 0.5
LEO_FLEET = Path(sys.executable).with_name("leo-fleet")
# What the agent process imports to run a poll (pipelines.cli.collect imports the rest inside run()).
AGENT_IMPORTS = "import pipelines.cli, ingest.collect.agent, ingest.kafka.producer, kafka"


@dataclass(frozen=True)
class Usage:
    seconds: float
    max_rss: int
    cpu_s: float
    steady_seconds: float
    steady_cpu_s: float


def main() -> int:
    restrict_new_files()  # an entry point: the files it writes are its user's alone
    parser = OneLineArgumentParser(prog="bench.collect", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=number(0, 86_400), default=120.0, help="events written for (default 120)")
    parser.add_argument("--interval", type=number(0, 3_600), default=10.0, help="poll interval (default 10)")
    parser.add_argument("--events-per-s", type=number(0, 10_000), default=10.0, help="events/s (default 10)")
    args = parser.parse_args()
    if args.seconds < 2 * args.interval:
        parser.error("--seconds must cover at least two --interval")
    with tempfile.TemporaryDirectory(prefix="leo-bench-collect-") as scratch:
        home = Path(scratch)
        settings = Settings(kafka=KafkaSettings(bootstrap_servers=f"127.0.0.1:{broker.free_port()}"))
        settings = settings.with_data_dir(home / "data")
        broker.start(settings)
        try:
            load_before = os.getloadavg()
            floor_rss = _floor_rss()
            usage, written, polls = _run_agent(settings, home, args)
            load_after = os.getloadavg()
        finally:
            broker.stop(settings)
    _print(args, usage, floor_rss, written, polls, load_before, load_after)
    return 0


def fake_host(root: Path) -> Path:
    """A sysfs tree with DEVICES memdevs, mem<k> at 0000:<38+k>:00.0 under root port 0000:00:0<k+1>.0."""
    devices = root / "bus" / "cxl" / "devices"
    devices.mkdir(parents=True)
    for k in range(DEVICES):
        root_port = root / "devices" / "pci0000:00" / f"0000:00:0{k + 1}.0"
        endpoint = root_port / _bdf(k)
        memdev = endpoint / f"mem{k}"
        (memdev / "ram").mkdir(parents=True)
        fx.write_attributes(memdev, serial=f"0x{fx.SERIAL + k:x}", firmware_version="1.4.2")
        fx.write_attributes(memdev / "ram", size="0x4000000000")
        fx.write_link(endpoint, "32.0 GT/s PCIe", 16, correctable=k)
        fx.write_link(root_port, "32.0 GT/s PCIe", 16, correctable=0)
        (devices / f"mem{k}").symlink_to(memdev)
    return root


def _bdf(k: int) -> str:
    return f"0000:{0x38 + k:02x}:00.0"


def _write_events(log: Path, per_s: float, stop: threading.Event, written: list[int]) -> None:
    """Append the fixtures' events round robin over the devices, paced to `per_s`, until `stop`."""
    started, n = time.monotonic(), 0
    with open(log, "ab", buffering=0) as out:
        while not stop.is_set():
            due = int((time.monotonic() - started) * per_s)
            lines = []
            for i in range(n, due):
                k = i % DEVICES
                event = fx.EVENTS[i % len(fx.EVENTS)]
                lines.append(fx.line(event, serial=fx.SERIAL + k, memdev=f"mem{k}", host=_bdf(k)) + b"\n")
            out.write(b"".join(lines))
            n = due
            written[0] = n
            stop.wait(0.1)


def _floor_rss() -> int:
    """RSS of an interpreter that imported what the agent imports, then idles."""
    code = f"{AGENT_IMPORTS}; import sys, time; print(flush=True); time.sleep(60)"
    floor = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    try:
        floor.stdout.readline()
        return psutil.Process(floor.pid).memory_info().rss
    finally:
        floor.kill()
        floor.wait()


def _run_agent(settings: Settings, home: Path, args: argparse.Namespace) -> tuple[Usage, int, list[dict]]:
    log = home / "cxl-monitor.log"
    log.touch()
    command = [str(LEO_FLEET), "collect", "--cxl-monitor", str(log), "--sysfs-root", str(fake_host(home / "sys"))]
    command += ["--state-dir", str(home / "state"), "--interval", str(args.interval), "--host", "bench-host"]
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers}
    env["LEO_FLEET_DATA_DIR"] = str(settings.data_dir)
    stop_writing, written = threading.Event(), [0]
    writer = threading.Thread(target=_write_events, args=(log, args.events_per_s, stop_writing, written))
    agent = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
    polls: list[dict] = []
    reader = threading.Thread(target=lambda: polls.extend(json.loads(line) for line in agent.stdout))
    reader.start()
    writer.start()
    process = psutil.Process(agent.pid)
    console = Console(stderr=True)
    console.print(f"agent pid {agent.pid}: {DEVICES} devices, {args.events_per_s:g} events/s for {args.seconds:g} s")
    started, max_rss, steady_from = time.monotonic(), 0, None
    try:
        while time.monotonic() - started < args.seconds + args.interval * 1.5:
            if time.monotonic() - started >= args.seconds:
                stop_writing.set()  # then the agent's next poll publishes the last lines
            with process.oneshot():
                cpu = process.cpu_times()
                max_rss = max(max_rss, process.memory_info().rss)
            if steady_from is None and polls:
                steady_from = (time.monotonic(), cpu.user + cpu.system)
            time.sleep(SAMPLE_S)
        cpu = process.cpu_times()
        ended = time.monotonic()
    finally:
        stop_writing.set()
        writer.join()
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=60)
        reader.join()
    if agent.returncode != 0 or steady_from is None:
        raise SystemExit(f"bench.collect: the agent ended with status {agent.returncode} after {len(polls)} polls")
    total = cpu.user + cpu.system
    usage = Usage(ended - started, max_rss, total, ended - steady_from[0], total - steady_from[1])
    return usage, written[0], polls


def _print(args, usage: Usage, floor_rss: int, written: int, polls: list[dict], before, after) -> None:
    mib = 1024 * 1024
    cpu_pct = 100 * usage.cpu_s / usage.seconds
    steady_pct = 100 * usage.steady_cpu_s / usage.steady_seconds
    published = sum(p["errors"] for p in polls)
    title = f"leo-fleet collect: {DEVICES} CXL devices, {args.interval:g} s interval, {usage.seconds:.0f} s"
    table = Table(title=title)
    for column in ("measure", "value", "acceptance", "ratio", "note"):
        table.add_column(column, justify="left" if column in ("measure", "note") else "right")
    table.add_row(
        "max RSS",
        f"{usage.max_rss / mib:.1f} MiB",
        f"< {MAX_RSS_MIB:g} MiB",
        f"{usage.max_rss / mib / MAX_RSS_MIB:.0%}",
        f"floor (same run): {floor_rss / mib:.1f} MiB, an idle interpreter with the agent's imports",
    )
    table.add_row(
        "CPU, steady state",
        f"{steady_pct:.2f} %",
        f"< {MAX_CPU_PCT:g} %",
        f"{steady_pct / MAX_CPU_PCT:.0%}",
        f"{usage.steady_cpu_s:.2f} s CPU over {usage.steady_seconds:.0f} s from the end of the first poll",
    )
    table.add_row(
        "CPU, whole run",
        f"{cpu_pct:.2f} %",
        "",
        "",
        f"{usage.cpu_s:.2f} s CPU over {usage.seconds:.0f} s, start-up imports included",
    )
    table.add_row(
        "events",
        f"{written:,}",
        "",
        "",
        f"{published:,} error rows published in {len(polls)} polls; "
        f"{sum(p['link'] for p in polls):,} link rows; {sum(p['rejected'] for p in polls)} rejected",
    )
    Console().print(table)
    print(f"load average before: {before[0]:.2f} {before[1]:.2f} {before[2]:.2f}; after: {after[0]:.2f} {after[1]:.2f}")
    print(f"ratio max RSS / 100 MiB: {usage.max_rss / mib / MAX_RSS_MIB:.1%} (acceptance: < 100%)")
    print(f"ratio steady CPU / 5 % of one core: {steady_pct / MAX_CPU_PCT:.1%} (acceptance: < 100%)")
    if published != written:
        print(f"published {published:,} of {written:,} events written: the last poll did not see them all")


if __name__ == "__main__":
    sys.exit(main())
