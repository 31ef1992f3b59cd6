"""One process of the first-start race: import everything first, say so, wait for the common start signal, then run.

python -m tests.reliability.first_start_worker READY GO cli ARGS...   # `leo-fleet ARGS` (the real entry point)
python -m tests.reliability.first_start_worker READY GO dagster DATA_DIR   # Dagster materializing sre/views

Interpreter start-up and imports (seconds for Dagster) happen before READY is written; the test creates GO once
every worker is ready, so all of them open the lake within milliseconds of each other.

`race_worker` is the cheap variant for many rounds: a long-lived process (multiprocessing, spawned once) that
opens the lake named by each task at the task's wall-clock instant.
"""

from __future__ import annotations

import faulthandler
import signal
import sys
import time
from datetime import UTC, datetime, timedelta
from multiprocessing import Queue
from pathlib import Path

GO_POLL_S = 0.002
GO_TIMEOUT_S = 120.0


def _wait_for(ready: Path, go: Path) -> None:
    ready.touch()
    deadline = time.monotonic() + GO_TIMEOUT_S
    while not go.exists():
        if time.monotonic() > deadline:
            sys.exit(f"no start signal at {go} within {GO_TIMEOUT_S:.0f} s")
        time.sleep(GO_POLL_S)


def race_worker(tasks: Queue, results: Queue) -> None:
    """Per task (settings, read_only, go_at): at `go_at` open the lake (writers also create the raw tables); report
    "ok", "no lake" (LakeNotFoundError) or the error, with the seconds it took. A None task ends the worker; "ready"
    first, once imported. A process of its own, like `leo-fleet`: its entry point makes the lake files private."""
    from ingest import lake
    from ingest.lake.raw_tables import ensure_tables
    from ingest.settings import restrict_new_files

    restrict_new_files()
    results.put(("ready", 0.0))
    for settings, read_only, go_at in iter(tasks.get, None):
        time.sleep(max(0.0, go_at - time.time()))
        started = time.monotonic()
        try:
            con = lake.connect(settings, read_only=read_only)
            try:
                if not read_only:
                    ensure_tables(con)
                con.execute("SELECT 1").fetchall()
            finally:
                con.close()
            outcome = "ok"
        except lake.LakeNotFoundError:
            outcome = "no lake"
        except Exception as exc:  # reported to the test, which fails with it
            outcome = f"{type(exc).__name__}: {exc}"
        results.put((outcome, time.monotonic() - started))


def run_cli(ready: Path, go: Path, args: list[str]) -> int:
    # What the subcommands import lazily, imported before the start signal like everything else.
    import ingest.lake
    import ingest.lake.loader
    import pipelines.cli.ingest
    import pipelines.cli.sql
    from pipelines.cli import main

    del ingest, pipelines

    _wait_for(ready, go)
    return main(args)


def run_dagster(ready: Path, go: Path, data_dir: str) -> int:
    """Dagster writing to the lake: the `sre/views` asset (views and macros, one catalog transaction) materialized
    in-process through the repository's Dagster instance under `<data dir>/dagster`, as the demo records its runs.
    On a fresh lake it may run before the raw tables exist (its views are then skipped and named) or while a loader
    creates them; a failed run raises (a traceback, exit 1)."""
    import dagster as dg

    from pipelines.definitions import defs
    from pipelines.defs.reports.sql_views import VIEWS_KEY
    from pipelines.demo import dagster_home
    from pipelines.lib.partitions import Window
    from pipelines.lib.resources import LakeResource
    from pipelines.materialize import Stage, run_stage

    definitions = defs()
    instance = dg.DagsterInstance.from_config(str(dagster_home(Path(data_dir))))
    lake = LakeResource(data_dir=data_dir)
    now = datetime.now(UTC)
    _wait_for(ready, go)
    run = run_stage(definitions, lake, Stage((VIEWS_KEY,), None), Window(now - timedelta(hours=1), now), instance)
    (result,) = run.results
    (materialization,) = result.asset_materializations_for_node("__".join(VIEWS_KEY.path))
    print({key: value.value for key, value in materialization.metadata.items()}, flush=True)
    return 0


if __name__ == "__main__":
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # the test asks a hung worker where it is
    ready_file, go_file, kind, *rest = sys.argv[1:]
    runner = {"cli": run_cli, "dagster": lambda r, g, args: run_dagster(r, g, *args)}[kind]
    sys.exit(runner(Path(ready_file), Path(go_file), rest))
