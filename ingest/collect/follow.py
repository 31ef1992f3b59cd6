"""Read the complete lines appended to a file since a saved position, surviving rotation and truncation.

A partial last line (the writer is mid-line) stays unread until its newline arrives. A new inode (the file was
rotated) or a file shorter than the offset (truncated) starts again from byte 0 of the current file.
"""

from __future__ import annotations

import os
import select
from pathlib import Path

from ingest.collect.position import FilePosition

MAX_READ_BYTES = 16 * 1024 * 1024  # per poll, so a huge backlog is published in bounded steps


def read_new_lines(path: Path, position: FilePosition) -> tuple[list[bytes], FilePosition]:
    """The complete lines after `position` (without their newlines) and the position after the last of them.

    A file that is missing (between a rotation's rename and the writer's new file) has nothing new yet.
    """
    try:
        with open(path, "rb") as file:
            status = os.fstat(file.fileno())
            offset = position.offset
            if status.st_ino != position.inode or status.st_size < offset:
                offset = 0
            file.seek(offset)
            data = file.read(MAX_READ_BYTES)
    except FileNotFoundError:
        return [], position
    complete = data[: data.rfind(b"\n") + 1]
    if not complete and len(data) == MAX_READ_BYTES:  # one line longer than a poll: hand it on whole (a reject)
        complete = data
    return complete.splitlines(), FilePosition(status.st_ino, offset + len(complete))


class StdinLines:
    """Complete lines from a pipe: everything until EOF (`wait=True`), or what has arrived so far.

    A pipe cannot be re-read, so it has no position to save: what a crash interrupts before the broker
    acknowledged it is lost (docs/collect.md; follow a file for exactly-once).
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._partial = b""
        self.closed = False

    def read(self, wait: bool) -> list[bytes]:
        chunks = [self._partial]
        while not self.closed and (wait or select.select([self._fd], [], [], 0)[0]):
            chunk = os.read(self._fd, 1 << 16)
            self.closed = not chunk
            chunks.append(chunk)
        data = b"".join(chunks)
        cut = len(data) if self.closed else data.rfind(b"\n") + 1
        self._partial = data[cut:]
        return data[:cut].splitlines()
