"""Where each source stopped, on disk: saved only after the broker acknowledged what was read before it.

A crash between the acknowledgement and the save replays at most the last poll (rows with the same deterministic
event ids); a crash before the acknowledgement loses nothing, because the position still points before it.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class FilePosition:
    """A followed file: its inode (a rotated file has a new one) and the byte offset after the last full line."""

    inode: int = 0
    offset: int = 0


def load_state(path: Path) -> dict:
    """The saved state of one source, or {} before its first save."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}


def write_atomically(path: Path, data: bytes) -> None:
    """`data` into `path` through a temporary file in the same directory (a dot name), fsynced, then os.replace over
    the old one: after a crash `path` holds the old bytes or the new ones, never a part."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def save_state(path: Path, state: dict) -> None:
    """Write `state` as JSON, atomically (`write_atomically`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, json.dumps(state, sort_keys=True).encode())


def load_position(path: Path) -> FilePosition:
    return FilePosition(**load_state(path))


def save_position(path: Path, position: FilePosition) -> None:
    save_state(path, asdict(position))
