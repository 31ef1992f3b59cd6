"""Writers that commit to one lake at the same moment, as loaders of one group do: real DuckLake commit conflicts.

Each writer has its own DuckDB session on the lake and commits small batches with `commit_batch`, the loader's write
path, on a partition of its own (loaders of one group) or all on the same partition and messages (a loader the group
has dropped, still committing beside the partition's new owner); like the loader, every batch carries a status row
with the writer's running totals of `WriteResult.retries` and `conflicts`. Used to prove that retries and conflicts
are counted, that nothing is stored twice, and that the Dagster check sees them climb.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from ingest import lake
from ingest.lake.raw_tables import ROW_SCHEMAS, Batch, Position, Rows, commit_batch, ensure_tables, message_digest
from ingest.settings import Settings

TOPIC = "leo.link"


@dataclass
class WriterTotals:
    loader_id: str
    commits: int = 0
    retries: int = 0
    conflicts: int = 0


def commit_concurrently(
    settings: Settings, writers: int, commits: int, same_messages: bool = False
) -> list[WriterTotals]:
    """`writers` threads, released together, each making `commits` commits of one message on partition = its
    index (with `same_messages`: all on partition 0, the same messages); returns each writer's totals."""
    con = lake.connect(settings)
    try:
        ensure_tables(con)
    finally:
        con.close()
    totals = [WriterTotals(f"conflict-test:{index}") for index in range(writers)]
    start = threading.Barrier(writers)
    failures: list[BaseException] = []

    def write(index: int) -> None:
        mine = totals[index]
        con = lake.connect(settings)
        try:
            start.wait()
            partition = 0 if same_messages else index
            for offset in range(commits):
                position = Position(TOPIC, partition, offset, digest=message_digest(b"%d/%d" % (partition, offset)))
                status = {"commit_retries_total": mine.retries, "commit_conflicts_total": mine.conflicts}
                batch = Batch(
                    rows=[Rows("link", ROW_SCHEMAS["link"].empty_table(), position)],
                    positions=[position],
                    status={"loader_id": mine.loader_id, "state": "running", **status},
                )
                result = commit_batch(con, batch, give_up_after_s=60)
                mine.retries += result.retries
                mine.conflicts += result.conflicts
                mine.commits += 1
        except BaseException as exc:  # reported by the caller's thread
            failures.append(exc)
        finally:
            con.close()

    threads = [threading.Thread(target=write, args=(index,)) for index in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    return totals
