"""Lake commits each loader retried, over a recent window, read from the loaders' status rows.

Every lake commit of a loader carries one status row (ingest/lake/loader.py) with two running counts:
`commit_retries_total`, the commits that had to be retried because another writer committed first (almost always
by DuckLake in the catalog, no data written again), and `commit_conflicts_total`, those of them run again whole,
batch written again (two writers storing one partition at once, SQLite's "database is locked"). Commits in a
window are the loader's status rows in it; its retries and conflicts are the growth of those counts, counted from
zero again when a count drops (a restarted loader that kept its host name and pid, as a restarted container does).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import duckdb

from ingest.lake.raw_tables import RAW, STATUS_TABLE

# A live loader writes a status row at least every 30 s: its last row before the window lies within this.
BASELINE_LOOKBACK = timedelta(minutes=10)


@dataclass(frozen=True)
class LoaderRetries:
    loader_id: str
    commits: int
    retries: int
    conflicts: int
    last_status: datetime

    @property
    def conflicts_per_1000_commits(self) -> float:
        return 1000 * self.conflicts / self.commits


def _growth(name: str) -> str:
    """SQL: the growth of a running count over the rows of `recent`, from zero again where it drops."""
    count, previous = f"{name}_count", f"previous_{name}"
    return f"sum(CASE WHEN {previous} IS NULL OR {count} < {previous} THEN {count} ELSE {count} - {previous} END)"


def commit_retries(con: duckdb.DuckDBPyConnection, since: datetime) -> list[LoaderRetries]:
    """Per loader that committed since `since`: its commits, their retries and conflicts, its last status time;
    the highest conflict rate first."""
    counts = {"retries": "commit_retries_total", "conflicts": "commit_conflicts_total"}
    columns = ", ".join(
        f"coalesce({total}, 0) AS {name}_count, lag(coalesce({total}, 0)) OVER (PARTITION BY loader_id ORDER BY ts) "
        f"AS previous_{name}"
        for name, total in counts.items()
    )
    rows = con.execute(
        f"""WITH recent AS (SELECT loader_id, ts, {columns} FROM {RAW}.{STATUS_TABLE} WHERE ts >= $lookback)
            SELECT loader_id, count(*) AS commits, {_growth("retries")} AS retries,
                   {_growth("conflicts")} AS conflicts, max(ts) AS last_status
            FROM recent WHERE ts >= $since GROUP BY loader_id
            ORDER BY conflicts / commits DESC, retries / commits DESC, loader_id""",
        {"since": since, "lookback": since - BASELINE_LOOKBACK},
    ).fetchall()
    return [
        LoaderRetries(loader_id, int(commits), int(retries), int(conflicts), last)
        for loader_id, commits, retries, conflicts, last in rows
    ]
