"""Crash points for the reliability tests: `LEO_FLEET_CRASH_AT=stage:n` kills the process the n-th time it reaches
`stage`, so a test can crash the real loader at an exact step of a load, or a Dagster run worker in the middle of
a mart write (docs/reliability.md).

Unset (always, outside those tests) it does nothing. The exit is `os._exit`: no finally blocks, no flush, no
Kafka or DuckDB shutdown, like a SIGKILL at that line.
"""

from __future__ import annotations

import os
from collections import Counter

ENV = "LEO_FLEET_CRASH_AT"
EXIT_CODE = 86
# before_write: batch decoded, no lake transaction yet; mid_transaction: rows, offsets and status inserted,
# COMMIT not yet sent; after_lake_commit: the lake committed, the Kafka offset commit not yet sent.
STAGES = ("before_write", "mid_transaction", "after_lake_commit")
# mart_write: `marts.replace_window` deleted the window's old rows and has not inserted the new ones yet.
MART_STAGE = "mart_write"

_reached: Counter[str] = Counter()


def crash_point(stage: str) -> None:
    """Die here if LEO_FLEET_CRASH_AT names this stage and this is its n-th visit (n defaults to 1)."""
    name, _, nth = os.environ.get(ENV, "").partition(":")
    if name != stage:
        return
    _reached[stage] += 1
    if _reached[stage] == int(nth or 1):
        os._exit(EXIT_CODE)
