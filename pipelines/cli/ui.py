"""`leo-fleet ui [--host H] [--port P]`: the Dagster UI over this data directory's lake and run history.

It runs `dagster dev` with DAGSTER_HOME taken from the settings' data-dir layout (holding the packaged instance
configuration, as the demo leaves it) and the code location named by module, so it works from any directory and
from a wheel install. Over a demo's data directory the partitions are the demo's span (recorded in its marker),
unless LEO_FLEET_PARTITIONS_START/END say otherwise, so the Catalog shows no hour the demo did not simulate. The UI
has no authentication: it listens on loopback unless told otherwise (docs/security.md). Beside it, the reports
directory is served on 127.0.0.1 (port LEO_FLEET_REPORTS_PORT, 3001 by default), so a report asset's link opens its
report from the UI; that server exits with the UI.
"""

from __future__ import annotations

import argparse
from typing import NoReturn

from pipelines.cli.errors import CliError, listen_arguments
from pipelines.lib.instance import UI_HOST, UI_PORT


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "ui",
        help="the Dagster UI (dagster dev) over this data directory: assets, checks, run history",
        description=(
            "Start `dagster dev` for the leo_fleet code location with DAGSTER_HOME under the data directory, so the "
            "UI shows the runs the demo and the schedules recorded there. Loopback only unless --host says otherwise."
        ),
    )
    listen_arguments(parser, UI_HOST, UI_PORT)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> NoReturn:
    import os

    from ingest.settings import ENV_PREFIX, Settings
    from pipelines.lib.demo_span import partition_settings, recorded_span
    from pipelines.lib.instance import dagster_dev, install_instance_config
    from pipelines.reports import serve

    settings = Settings.from_env()
    home = install_instance_config(settings.dagster_home)
    span = recorded_span(settings.data_dir)
    pinned = partition_settings(*span) if span else {}
    environment = {
        **os.environ,
        **{name: value for name, value in pinned.items() if not os.environ.get(name)},  # set outright: kept
        "DAGSTER_HOME": str(home),
        f"{ENV_PREFIX}DATA_DIR": str(settings.data_dir),
    }
    command = dagster_dev(args.host, args.port)
    try:
        serve.start(settings)
    except OSError as exc:  # the port is taken, say: one line, not a traceback
        raise CliError(
            f"cannot serve the reports on {serve.HOST}:{settings.reports_port}: {exc.strerror} "
            f"(set {ENV_PREFIX}REPORTS_PORT to a free port)"
        ) from None
    print(f"Reports: http://{serve.HOST}:{settings.reports_port}/slo/", flush=True)
    try:
        os.execve(command[0], command, environment)  # Ctrl-C and the exit status are dagster's own from here on
    except OSError as exc:  # no dagster beside this interpreter, say: one line, not a traceback
        raise CliError(f"cannot start {command[0]}: {exc.strerror}") from None
