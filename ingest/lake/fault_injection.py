"""Crash points for the reliability tests: `LEO_FLEET_CRASH_AT=stage:n` kills the process the n-th time it reaches
`stage`, so a test can crash the real loader at an exact step of a load, or a Dagster run worker in the middle of
a mart write (docs/reliability.md).

The variable is read once, by an entry point (the `ingest` and `load` commands, the lake resource of a Dagster run),
into a `CrashPoints` that it hands to the code reaching the stages; unset (always, outside those tests) there is none,
and nothing happens. The exit is `os._exit`: no finally blocks, no flush, no Kafka or DuckDB shutdown, like a SIGKILL
at that line.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

ENV = "LEO_FLEET_CRASH_AT"
EXIT_CODE = 86
# before_write: batch decoded, no lake transaction yet; mid_transaction: rows, offsets and status inserted,
# COMMIT not yet sent; after_lake_commit: the lake committed, the Kafka offset commit not yet sent.
STAGES = ("before_write", "mid_transaction", "after_lake_commit")
# mart_write: `marts.replace_window` deleted the window's old rows and has not inserted the new ones yet.
MART_STAGE = "mart_write"
# load_batch: `leo-fleet load` read the n-th batch of a run-directory file; the file's transaction is not committed.
LOAD_STAGE = "load_batch"


@dataclass
class CrashPoints:
    """Die at the n-th visit of one stage (n defaults to 1); counts the visits of whoever holds it."""

    stage: str
    nth: int = 1
    visits: int = field(default=0, init=False)

    @classmethod
    def parse(cls, text: str) -> CrashPoints | None:
        """`stage` or `stage:n` (LEO_FLEET_CRASH_AT's value); None for an empty text."""
        stage, _, nth = text.partition(":")
        return cls(stage, int(nth or 1)) if stage else None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> CrashPoints | None:
        return cls.parse((os.environ if env is None else env).get(ENV, ""))

    def reach(self, stage: str) -> None:
        """Exit the process if this is the n-th visit of the configured stage."""
        if stage != self.stage:
            return
        self.visits += 1
        if self.visits == self.nth:
            os._exit(EXIT_CODE)
