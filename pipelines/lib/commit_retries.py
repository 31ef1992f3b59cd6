"""Lake commits each loader retried after a conflict, over a recent window, read from the loaders' status rows.

Every lake commit of a loader carries one status row (ingest/lake/loader.py), and `commit_retries_total` in it is
the loader's running count of commits it had to run again because another writer committed first (a DuckLake
snapshot-id race, or SQLite's "database is locked"). Commits in a window are the loader's status rows in it; its
retries are the growth of that running count, counted from zero again when it drops (a restarted loader that kept
its host name and pid, as a restarted container does).
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
    last_status: datetime

    @property
    def per_1000_commits(self) -> float:
        return 1000 * self.retries / self.commits


def commit_retries(con: duckdb.DuckDBPyConnection, since: datetime) -> list[LoaderRetries]:
    """Per loader that committed since `since`: its commits, the retries they took, its last status time; the
    highest retry rate first."""
    rows = con.execute(
        f"""WITH recent AS (
                SELECT loader_id, ts, coalesce(commit_retries_total, 0) AS total,
                       lag(coalesce(commit_retries_total, 0)) OVER (PARTITION BY loader_id ORDER BY ts) AS previous
                FROM {RAW}.{STATUS_TABLE} WHERE ts >= $lookback)
            SELECT loader_id, count(*) AS commits,
                   sum(CASE WHEN previous IS NULL OR total < previous THEN total ELSE total - previous END) AS retries,
                   max(ts) AS last_status
            FROM recent WHERE ts >= $since GROUP BY loader_id
            ORDER BY retries / commits DESC, loader_id""",
        {"since": since, "lookback": since - BASELINE_LOOKBACK},
    ).fetchall()
    return [LoaderRetries(loader_id, int(commits), int(retries), last) for loader_id, commits, retries, last in rows]
