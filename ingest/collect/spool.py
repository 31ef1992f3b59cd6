"""A bounded on-disk spool of polls, sent in order and deleted only once Kafka acknowledged them.

A publication is one poll's output (row tables and rejects per topic) together with the source states (positions,
sysfs epochs, drop counts) that become true once it is safe. The agent writes every poll as one segment file
(temporary file, fsync, rename, fsync of the directory) and only then saves those states. Segments are numbered
and sent oldest first; beside a segment that was sent once lies its attempt record (where its partitions ended
before, for ingest.collect.reconcile). A crash between writing a segment and saving its states is repaired at
start-up by saving the newest segment's states again (`newest_states`), so the sources do not read the same
records a second time.

The spool never holds more than `max_bytes` of files: a publication that does not fit is refused and the caller
keeps its positions (a followed file, rasdaemon) or counts what it had to drop (a pipe).
"""

from __future__ import annotations

import io
import json
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from ingest.collect.cxl_monitor import Reject
from ingest.collect.position import write_atomically

LENGTH = struct.Struct(">Q")
SEGMENT_SUFFIX = ".segment"
ATTEMPT_SUFFIX = ".attempt"


@dataclass
class Publication:
    """What one poll publishes, in order, and the states to save once it is acknowledged or spooled."""

    tables: list[tuple[str, pa.Table]] = field(default_factory=list)
    rejects: list[tuple[str, Reject]] = field(default_factory=list)
    states: dict[str, dict] = field(default_factory=dict)  # state file name → its new content

    def has_records(self) -> bool:
        return bool(self.rejects) or any(table.num_rows for _, table in self.tables)

    def encode(self) -> bytes:
        """A JSON header line (states, item kinds) and then each item's bytes, length-prefixed."""
        items, payloads = [], []
        for topic, table in self.tables:
            if not table.num_rows:
                continue
            items.append({"topic": topic})
            sink = io.BytesIO()
            with pa.ipc.new_stream(sink, table.schema) as writer:
                writer.write_table(table)
            payloads.append(sink.getvalue())
        for topic, reject in self.rejects:
            items.append({"topic": topic, "reason": reject.reason})
            payloads.append(reject.raw)
        header = json.dumps({"states": self.states, "items": items}, sort_keys=True).encode()
        return b"".join(LENGTH.pack(len(part)) + part for part in (header, *payloads))

    @classmethod
    def decode(cls, data: bytes) -> Publication:
        parts, offset = [], 0
        while offset < len(data):
            (length,) = LENGTH.unpack_from(data, offset)
            parts.append(data[offset + LENGTH.size : offset + LENGTH.size + length])
            offset += LENGTH.size + length
        header = json.loads(parts[0])
        publication = cls(states=header["states"])
        for item, payload in zip(header["items"], parts[1:], strict=True):
            if "reason" in item:
                publication.rejects.append((item["topic"], Reject(payload, item["reason"])))
            else:
                publication.tables.append((item["topic"], pa.ipc.open_stream(payload).read_all()))
        return publication


class Spool:
    """Numbered segment files in `directory`, at most `max_bytes` in all."""

    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory, self.max_bytes = directory, max_bytes
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob(".*"):  # a temporary file a crash left before its rename
            stale.unlink()

    def segments(self) -> list[Path]:
        """Oldest first."""
        return sorted(self.directory.glob(f"*{SEGMENT_SUFFIX}"), key=lambda path: int(path.name.split(".")[0]))

    def size(self) -> int:
        """Bytes of every file in the spool: segments and their attempt records."""
        return sum(path.stat().st_size for path in self.directory.iterdir())

    def append(self, publication: Publication) -> bool:
        """Write `publication` as the newest segment, durably; False (nothing written) when it does not fit."""
        data = publication.encode()
        segments = self.segments()
        if self.size() + len(data) > self.max_bytes:
            return False
        number = int(segments[-1].name.split(".")[0]) + 1 if segments else 1
        self._write(self.directory / f"{number:012d}{SEGMENT_SUFFIX}", data)
        return True

    def attempt(self, segment: Path) -> dict | None:
        """The partition ends recorded before `segment` was first sent, or None if it never was."""
        try:
            return json.loads(self._attempt_path(segment).read_bytes())
        except FileNotFoundError:
            return None

    def record_attempt(self, segment: Path, ends: dict) -> None:
        """Save, durably and before anything of `segment` is sent, where its topics ended (ingest.collect.reconcile)."""
        self._write(self._attempt_path(segment), json.dumps(ends, sort_keys=True).encode())

    def _attempt_path(self, segment: Path) -> Path:
        return segment.with_name(segment.name + ATTEMPT_SUFFIX)

    def _write(self, path: Path, data: bytes) -> None:
        """`path` whole or absent after a crash, its directory entry durable too."""
        write_atomically(path, data)
        self._sync_directory()

    def read(self, segment: Path) -> Publication:
        return Publication.decode(segment.read_bytes())

    def remove(self, segment: Path) -> None:
        segment.unlink()
        self._attempt_path(segment).unlink(missing_ok=True)
        self._sync_directory()

    def newest_states(self) -> dict[str, dict]:
        """The states of the newest segment (to save again at start-up), {} when the spool is empty."""
        segments = self.segments()
        return self.read(segments[-1]).states if segments else {}

    def _sync_directory(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
