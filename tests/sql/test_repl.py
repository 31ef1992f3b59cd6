"""The interactive mode: statements span lines until ';', errors print one line and the prompt carries on."""

from __future__ import annotations

import _thread
import signal
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

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


@pytest.fixture
def python_sigint() -> Iterator[None]:
    """Ctrl-C as a `leo-fleet sql` process gets it: Python's own SIGINT handler. The test process may run with
    another one (a pytest-xdist worker ignores SIGINT), and then interrupt_main() would do nothing."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.usefixtures("python_sigint")
def test_the_prompt_survives_anything_typed(
    materialized: Materialized, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Comment-only and empty statements, parse errors, refused functions, Ctrl-C on a line and during a query."""
    monkeypatch.setenv("HOME", str(tmp_path))
    with sqlite3.connect(tmp_path / "runs.sqlite") as db:
        db.execute("CREATE TABLE runs AS SELECT 'the-secret' AS secret")
    db.close()
    con = sre_session(materialized.data_dir)
    endless = "SELECT sum(hash(i)) FROM range(1000000000000) t(i);"
    lines = iter(
        [
            "-- just a comment;",
            ";",
            "SELECT (;",
            f"FROM sqlite_scan('{tmp_path / 'runs.sqlite'}', 'runs');",
            "SELECT 1",
            KeyboardInterrupt,  # Ctrl-C while typing: the unfinished statement is dropped
            endless,  # Ctrl-C while it runs
            "SELECT 'still here' AS status;",
        ]
    )
    timers = [threading.Timer(0.5, _thread.interrupt_main), threading.Timer(60, con.interrupt)]  # 2nd: no hang

    def read_line(prompt: str) -> str:
        line = next(lines, EOFError)
        if line is EOFError or line is KeyboardInterrupt:
            raise line
        if line == endless:
            for timer in timers:
                timer.start()
        return line

    try:
        repl(con, "csv", read_line)
    finally:
        for timer in timers:
            timer.cancel()
        con.close()
    out, err = capsys.readouterr()
    assert "status\nstill here\n" in out and "the-secret" not in out + err
    errors = err.splitlines()
    assert [line.split(":")[0] for line in errors] == ["error"] * 5, errors
    assert "nothing to run" in errors[0] and "nothing to run" in errors[1]
    assert "Parser Error" in errors[2]
    assert "sqlite_scan() is not on the allowlist" in errors[3]
    assert errors[4] == "error: interrupted"
