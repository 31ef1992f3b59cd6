"""`leo-fleet collect`: the host collector for real Linux CXL hosts (cxl monitor, rasdaemon, sysfs), docs/collect.md."""

from __future__ import annotations

import argparse
import importlib.abc
import json
import signal
import socket
import sys
from dataclasses import asdict
from pathlib import Path

from ingest.collect import DEFAULT_SPOOL_MAX_BYTES
from ingest.settings import Settings
from pipelines.cli.errors import CliError, number, whole_number


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "collect",
        help="collect this host's CXL telemetry (cxl monitor, rasdaemon, sysfs) and publish it to the telemetry topics",
        description=(
            "Follow `cxl monitor` JSON lines (a file, rotation-safe, or - for stdin), read rasdaemon's SQLite "
            "database by row id and poll sysfs for every CXL memory device's link state and AER counters; publish "
            "the contract's rows keyed by controller. Positions are saved in --state-dir only after Kafka "
            "acknowledged or the poll was written to the bounded spool there (broker unreachable), so a restart "
            "resumes exactly. Records that cannot be mapped are sent to raw.quarantine with the reason. Prints one "
            "JSON line per poll."
        ),
    )
    parser.add_argument("--cxl-monitor", type=Path, metavar="FILE|-", help="`cxl monitor` output to follow")
    parser.add_argument("--rasdaemon", type=Path, metavar="DB", help="rasdaemon's SQLite database to read")
    parser.add_argument("--sysfs-root", type=Path, metavar="DIR", help="sysfs to poll (on a host: /sys)")
    parser.add_argument("--state-dir", type=Path, required=True, metavar="DIR", help="where positions are kept")
    parser.add_argument(
        "--interval", type=number(0, 86_400), default=10.0, metavar="S", help="seconds between polls (default 10)"
    )
    parser.add_argument(
        "--spool-max-bytes",
        type=whole_number(0, 2**40),
        default=DEFAULT_SPOOL_MAX_BYTES,
        metavar="N",
        help=f"bound of the on-disk spool for a broker outage (default {DEFAULT_SPOOL_MAX_BYTES}; 0: no spool)",
    )
    parser.add_argument("--once", action="store_true", help="poll every source once, publish, and exit")
    parser.add_argument("--host", default=socket.gethostname(), help="host name on every row (default: this host)")
    parser.add_argument("--rack", default="unassigned", help="rack name on every error row and the inventory")
    parser.add_argument("--region", default="unassigned", help="region name on every error row and the inventory")
    parser.set_defaults(run=run)


class WithoutPandas(importlib.abc.MetaPathFinder):
    """Refuses to import pandas. pyarrow imports pandas, whenever it is installed, on the first array it builds
    from Python objects (to ask whether they are pandas objects): about 35 MiB of a host agent that must stay
    under 100 MiB, for objects the agent never passes (docs/collect.md, "Cost on a host")."""

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> None:
        if fullname.partition(".")[0] == "pandas":
            raise ModuleNotFoundError(f"leo-fleet collect runs without {fullname}", name=fullname)
        return None


def run(args: argparse.Namespace) -> int:
    sys.meta_path.insert(0, WithoutPandas())  # before pyarrow builds its first array in this process
    from ingest.collect.agent import STDIN, Agent, CollectOptions
    from ingest.collect.cxl_monitor import HostIdentity

    _validate(args)
    options = CollectOptions(
        state_dir=args.state_dir,
        identity=HostIdentity(args.host, args.rack, args.region),
        cxl_monitor=STDIN if args.cxl_monitor == Path("-") else args.cxl_monitor,
        sysfs_root=args.sysfs_root,
        rasdaemon=args.rasdaemon,
        interval_s=args.interval,
        once=args.once,
        spool_max_bytes=args.spool_max_bytes,
    )
    agent = Agent(Settings.from_env(), options)
    previous = {signum: signal.signal(signum, lambda *_: agent.stop()) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        agent.run(on_poll=lambda summary: print(json.dumps(asdict(summary)), flush=True))
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0


def _validate(args: argparse.Namespace) -> None:
    """Refuse before connecting: no source, a source that is not there, a state dir that cannot be one."""
    if args.cxl_monitor is None and args.sysfs_root is None and args.rasdaemon is None:
        raise CliError("nothing to collect: give --cxl-monitor FILE|-, --rasdaemon DB and/or --sysfs-root DIR")
    if args.rasdaemon is not None and not _is_sqlite(args.rasdaemon):
        raise CliError(f"--rasdaemon {args.rasdaemon} is not an SQLite database (rasdaemon's ras-mc_event.db)")
    if args.cxl_monitor not in (None, Path("-")) and not args.cxl_monitor.is_file():
        raise CliError(f"--cxl-monitor {args.cxl_monitor} is not a file")
    if args.sysfs_root is not None and not (args.sysfs_root / "bus").is_dir():
        raise CliError(f"--sysfs-root {args.sysfs_root} has no bus/ directory: not a sysfs tree")
    if args.state_dir.exists() and not args.state_dir.is_dir():
        raise CliError(f"--state-dir {args.state_dir} is not a directory")
    for name in ("host", "rack", "region"):
        if not getattr(args, name).strip():
            raise CliError(f"--{name} must not be empty")


def _is_sqlite(path: Path) -> bool:
    try:
        with open(path, "rb") as file:
            return file.read(16) == b"SQLite format 3\x00"
    except OSError:
        return False
