"""Following a file from a saved position: whole lines only, rotation and truncation; positions saved atomically."""

from __future__ import annotations

import os

from ingest.collect.follow import StdinLines, read_new_lines
from ingest.collect.position import FilePosition, load_position, save_position


def test_only_complete_lines_are_read_and_the_position_moves_past_them(tmp_path):
    path = tmp_path / "monitor.log"
    path.write_bytes(b"one\ntwo\nthr")

    lines, position = read_new_lines(path, FilePosition())
    with open(path, "ab") as file:
        file.write(b"ee\nfour\n")
    more, after = read_new_lines(path, position)

    assert lines == [b"one", b"two"] and position == FilePosition(os.stat(path).st_ino, 8)
    assert more == [b"three", b"four"] and after.offset == path.stat().st_size


def test_a_rotated_or_truncated_file_is_read_from_its_start(tmp_path):
    path = tmp_path / "monitor.log"
    path.write_bytes(b"old-1\nold-2\n")
    _, before_rotation = read_new_lines(path, FilePosition())

    path.rename(tmp_path / "monitor.log.1")
    missing, kept = read_new_lines(path, before_rotation)  # the writer has not created the new file yet
    path.write_bytes(b"new-1\n")
    rotated, position = read_new_lines(path, before_rotation)
    path.write_bytes(b"")  # truncated in place (copytruncate)
    path.write_bytes(b"t\n")
    truncated, _ = read_new_lines(path, position)

    assert (missing, kept) == ([], before_rotation)
    assert rotated == [b"new-1"]
    assert truncated == [b"t"]


def test_a_position_survives_a_restart_and_is_replaced_atomically(tmp_path):
    path = tmp_path / "state" / "position.json"

    before = load_position(path)
    save_position(path, FilePosition(12, 345))
    save_position(path, FilePosition(12, 678))

    assert before == FilePosition()
    assert load_position(path) == FilePosition(12, 678)
    assert [p.name for p in path.parent.iterdir()] == ["position.json"]  # no temporary left behind


def test_stdin_lines_hold_a_partial_line_until_its_newline_or_the_end():
    read_end, write_end = os.pipe()
    lines = StdinLines(read_end)
    os.write(write_end, b"a\nb")

    first = lines.read(wait=False)
    os.write(write_end, b"c\nd")
    os.close(write_end)
    rest = lines.read(wait=True)

    assert first == [b"a"]
    assert rest == [b"bc", b"d"] and lines.closed
    os.close(read_end)
