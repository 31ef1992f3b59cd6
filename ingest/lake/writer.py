"""A background thread that owns the loader's lake connection and writes one batch at a time.

The Kafka consumer keeps polling (group membership, decoding the next batch) while DuckDB, which releases the
GIL, writes the previous one. The hand-off holds at most one batch, so a slow lake shows up as back-pressure
in the loader instead of unbounded memory. A batch that still fails after `commit_batch`'s retries stops the
loader: its records were never committed anywhere, so a restart re-reads them from the stored watermark.
"""

from __future__ import annotations

import queue
import threading

import duckdb

from ingest.lake.fault_injection import CrashPoints
from ingest.lake.raw_tables import Batch, WriteResult, commit_batch


class LakeWriteError(RuntimeError):
    """A batch could not be committed to the lake, even after retries."""


class LakeWriter:
    def __init__(self, con: duckdb.DuckDBPyConnection, crash_points: CrashPoints | None = None) -> None:
        self._con = con
        self._crash_points = crash_points
        self._todo: queue.Queue[Batch | None] = queue.Queue(maxsize=1)
        self._done: queue.Queue[WriteResult | BaseException] = queue.Queue()
        self._in_flight = 0
        self._thread = threading.Thread(target=self._run, name="lake-writer", daemon=True)
        self._thread.start()

    @property
    def busy(self) -> bool:
        return self._in_flight > 0

    def submit(self, batch: Batch) -> None:
        self._in_flight += 1
        self._todo.put(batch)

    def results(self, wait: bool = False) -> list[WriteResult]:
        """Finished writes, oldest first; with `wait`, blocks until nothing is in flight."""
        finished = []
        while self._in_flight:
            try:
                outcome = self._done.get(block=wait)
            except queue.Empty:
                break
            self._in_flight -= 1
            if isinstance(outcome, BaseException):
                raise LakeWriteError(f"lake write failed: {' '.join(str(outcome).split())}") from outcome
            finished.append(outcome)
        return finished

    def close(self) -> None:
        self._todo.put(None)
        self._thread.join()

    def _run(self) -> None:
        while (batch := self._todo.get()) is not None:
            try:
                self._done.put(commit_batch(self._con, batch, crash_points=self._crash_points))
            except BaseException as exc:
                self._done.put(exc)
