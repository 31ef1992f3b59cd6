"""The interactive mode: statements span lines until ';', errors print one line and the prompt carries on."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pipelines.cli.sql import CONTINUATION, PROMPT, repl
from tests.sample_lake import Materialized
from tests.sql.helpers import sre_session


def scripted(lines: list[str], prompts: list[str]) -> object:
    """A stand-in for input(): answers with `lines`, records each prompt, then signals end of input."""
    pending: Iterator[str] = iter(lines)

    def read_line(prompt: str) -> str:
        prompts.append(prompt)
        try:
            return next(pending)
        except StopIteration:
            raise EOFError from None

    return read_line


def test_a_session(materialized: Materialized, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(materialized.data_dir))  # the history file goes to a throwaway home
    con = sre_session(materialized.data_dir)
    prompts: list[str] = []
    lines = [
        "SELECT 6 * 7",
        "  AS answer;",
        ".tables",
        "SELECT no_such_column FROM sre.fleet_health;",
        "DELETE FROM raw.inventory;",
        ".nonsense",
        "SELECT 'still here' AS status;",
    ]
    try:
        repl(con, "csv", scripted(lines, prompts))
    finally:
        con.close()
    out, err = capsys.readouterr()
    assert prompts[:3] == [PROMPT, CONTINUATION, PROMPT]
    assert "answer\n42\n" in out
    assert "sre,fleet_health,view" in out and "raw,latency,table" in out
    assert "status\nstill here\n" in out
    errors = err.splitlines()
    assert len(errors) == 3 and all(line.startswith("error: ") for line in errors)
    assert "no_such_column" in errors[0] and "DELETE statements are refused" in errors[1] and ".nonsense" in errors[2]


def test_quit_ends_the_session(materialized: Materialized, capsys: pytest.CaptureFixture) -> None:
    con = sre_session(materialized.data_dir)
    prompts: list[str] = []
    try:
        repl(con, "table", scripted([".quit", "SELECT 1;"], prompts))
    finally:
        con.close()
    assert prompts == [PROMPT]
