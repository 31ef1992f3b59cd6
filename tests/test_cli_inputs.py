"""Whatever arguments and settings come in, `leo-fleet` answers with a documented exit status and, on failure,
one line on stderr: never a traceback (issue 11, item 4).

Hypothesis drives every subcommand with generated arguments and every LEO_FLEET_* and KAFKA_* variable with
generated values, in process (`pipelines.cli.main`), so thousands of examples take a minute. Generated input
cannot start long work or leave this machine: Kafka is a loopback port this test holds bound and closed (so a
broker cannot start on it either), data directories live under a temporary directory that is also the working
directory, and values that pass validation meet a failure that ends the run at once (no broker, no lake, no
run directory). A few real subprocesses check the cases the issue listed, as a user types them.
"""

from __future__ import annotations

import contextlib
import io
import os
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import pipelines.demo  # noqa: F401  (imported once with the real environment: it reads LEO_FLEET_PARTITIONS_START)
from ingest import lake
from ingest.kafka import broker
from ingest.settings import SASL_MECHANISMS, SECURITY_PROTOCOLS, Settings, SettingsError
from pipelines.cli import main
from tests.ingest.kafka.helpers import CLI
from tests.sample_lake import SAMPLE_SPAN, Materialized

ENV_EXAMPLES = 1_000
ARGUMENT_EXAMPLES = 1_200
# 0 done; 1 a run that failed (database, memory); 2 bad input; 3 `broker status`: not running (LSB).
EXIT_STATUSES = {0, 1, 2, 3}
# Every setting the project reads (LEO_FLEET_CRASH_AT is the reliability tests' crash switch, not a setting).
VARIABLES = (
    "KAFKA_BOOTSTRAP_SERVERS",
    "KAFKA_SECURITY_PROTOCOL",
    "KAFKA_SASL_MECHANISM",
    "KAFKA_SASL_USERNAME",
    "KAFKA_SASL_PASSWORD",
    "KAFKA_SSL_CAFILE",
    "LEO_FLEET_PARTITIONS",
    "LEO_FLEET_CONSUMER_GROUP",
    "LEO_FLEET_DATA_DIR",
    "LEO_FLEET_LAKE_CATALOG",
    "LEO_FLEET_LAKE_DATA_PATH",
    "LEO_FLEET_MAX_CLOCK_SKEW_S",
    "LEO_FLEET_PARTITIONS_START",
    "LEO_FLEET_PARTITIONS_END",
    "LEO_FLEET_REPORTS_PORT",
)
FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
BAD_PORTS = st.one_of(
    st.integers(-5, 0).map(str),
    st.integers(65_536, 10**6).map(str),
    st.sampled_from(["abc", "", " ", "1e3", "-", "٣"]),
)


@dataclass(frozen=True)
class Sandbox:
    root: Path  # the working directory: relative paths land here
    data_dir: Path
    lake_dir: Path  # a data dir holding an empty lake (nothing loaded): sql and report get past opening it
    a_file: Path
    empty_dir: Path
    port: int  # bound, never listening: connections are refused and no broker can take it

    @property
    def kafka(self) -> str:
        return f"127.0.0.1:{self.port}"


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    root = tmp_path_factory.mktemp("cli-inputs")
    a_file = root / "a-file"
    a_file.write_text("not a directory, not a database\n")
    (root / "empty").mkdir()
    lake.connect(Settings().with_data_dir(root / "lake")).close()
    with socket.socket() as held:
        held.bind(("0.0.0.0", 0))
        yield Sandbox(root, root / "data", root / "lake", a_file, root / "empty", held.getsockname()[1])
    # A broker this test started would be a bug in the test's inputs: stop it, then say so.
    homes = [Settings().with_data_dir(pid_file.parents[1]) for pid_file in root.rglob("broker/tansu.pid")]
    running = [home for home in homes if broker.status(home).running]
    for home in running:
        broker.stop(home)
    assert not running, [home.data_dir for home in running]


def run(sandbox: Sandbox, argv: list[str], env: dict[str, str | None]) -> tuple[int, str, str]:
    """`leo-fleet argv` in process, `env` over the sandbox's defaults (None: unset): (status, stderr, stdout)."""
    defaults = {"KAFKA_BOOTSTRAP_SERVERS": sandbox.kafka, "LEO_FLEET_DATA_DIR": str(sandbox.data_dir)}
    stderr, stdout = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(sandbox.root)
        patch.setenv("XDG_DATA_HOME", str(sandbox.root / "xdg"))  # the default data dir, if it is unset
        for name in VARIABLES:
            patch.setenv(name, "")  # records the original, so even what the demo writes is undone
            value = env.get(name, defaults.get(name))
            if value is None:
                patch.delenv(name)
            else:
                patch.setenv(name, value)
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(stdout):
            try:
                status = main(argv)
            except SystemExit as exc:  # argparse: --help, or a bad argument
                status = exc.code or 0
    return status, stderr.getvalue(), stdout.getvalue()


def assert_one_line_answer(status: int, stderr: str, stdout: str) -> None:
    assert status in EXIT_STATUSES, (status, stderr)
    assert "Traceback" not in stderr
    if status in (1, 2):
        (line,) = stderr.splitlines()
        assert line.startswith("leo-fleet") and ": error: " in line, line
    else:
        assert len(stderr.splitlines()) <= 1, (stderr, stdout)


# ---------------------------------------------------------------------------------------------------------
# Generated values: mostly malformed or out of range; the valid ones point only at the sandbox.
# ---------------------------------------------------------------------------------------------------------

TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=16)
# One path component, so a generated path stays under the sandbox (the working directory).
NAME = st.text(st.characters(codec="utf-8", exclude_characters="\x00/"), min_size=1, max_size=16).filter(
    lambda s: s.strip() and s not in (".", "..") and not s.startswith("~")
)
NUMBERS = st.one_of(
    st.integers(-(10**6), 10**13).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["0", "-1", "1e300", "nan", "inf", "1_000", " 7 ", "0x10", "", "9" * 5000]),
)


SQL = st.lists(
    st.sampled_from(["SELECT", "1", "FROM", "raw.latency", "--", ";", "'", "(", ")", "*", "/*", "read_csv('x')"]),
    max_size=6,
).map(" ".join)


def servers(sandbox: Sandbox) -> st.SearchStrategy[str]:
    """Loopback hosts on the held port, or malformed lists: nothing that resolves beyond this machine. Never
    empty: that means the default, 127.0.0.1:9092, where a real broker may run (or be started)."""
    host = st.sampled_from(["127.0.0.1", "localhost", "127.0.0.2", "", " ", "::1", "[", "a b", "127.0.0.1:1"])
    entry = st.tuples(host, st.sampled_from([":", "", "::"]), st.just(str(sandbox.port)) | BAD_PORTS).map("".join)
    garbage = st.text(alphabet=":,. []-x", min_size=1, max_size=8)
    return st.lists(entry, min_size=1, max_size=3).map(",".join) | garbage


def paths(sandbox: Sandbox) -> st.SearchStrategy[str]:
    fixed = [sandbox.data_dir, sandbox.a_file, sandbox.empty_dir, "/proc/nope", "~nosuchuser/x", "", "x" * 300]
    return st.sampled_from([str(p) for p in fixed]) | NAME


def catalogs(sandbox: Sandbox) -> st.SearchStrategy[str]:
    fixed = [
        "garbage",
        "sqlite:",
        "postgres:",
        f"sqlite:{sandbox.root / 'other.sqlite'}",
        f"sqlite:{sandbox.a_file}",
        f"sqlite:{sandbox.empty_dir}",
        "sqlite:/proc/nope/catalog.sqlite",
        "sqlite:it's.sqlite",
        f"postgres:host=127.0.0.1 port={sandbox.port} dbname=lake connect_timeout=1",
    ]
    return st.sampled_from(fixed) | NAME.map("sqlite:".__add__) | TEXT.filter(lambda s: ":" not in s)


def environments(sandbox: Sandbox) -> st.SearchStrategy[dict[str, str | None]]:
    """A value (or unset) for every variable; each keeps its sandbox default (if any) when not drawn."""
    choices = {
        "KAFKA_BOOTSTRAP_SERVERS": servers(sandbox),
        "KAFKA_SECURITY_PROTOCOL": st.sampled_from([*SECURITY_PROTOCOLS, "BOGUS", "plaintext"]) | TEXT,
        "KAFKA_SASL_MECHANISM": st.sampled_from([*SASL_MECHANISMS, "GSSAPI", "OAUTHBEARER"]) | TEXT,
        "KAFKA_SASL_USERNAME": TEXT,
        "KAFKA_SASL_PASSWORD": TEXT,
        "KAFKA_SSL_CAFILE": paths(sandbox),
        "LEO_FLEET_PARTITIONS": NUMBERS,
        "LEO_FLEET_CONSUMER_GROUP": TEXT,
        "LEO_FLEET_DATA_DIR": paths(sandbox),
        "LEO_FLEET_LAKE_CATALOG": catalogs(sandbox),
        "LEO_FLEET_LAKE_DATA_PATH": paths(sandbox) | st.just("it's"),
        "LEO_FLEET_MAX_CLOCK_SKEW_S": NUMBERS,
        "LEO_FLEET_PARTITIONS_START": st.sampled_from(["2026-01-05", "2000-01-01", "1999-12-31", "9999-12-31"]) | TEXT,
        "LEO_FLEET_PARTITIONS_END": st.sampled_from(["2026-01-06T00:00Z", "2026-01-06T00:30Z", "1999-12-31"]) | TEXT,
        "LEO_FLEET_REPORTS_PORT": BAD_PORTS | st.sampled_from(["1", "3001", "65535"]),
    }
    value = {
        name: strategy if name == "KAFKA_BOOTSTRAP_SERVERS" else st.none() | strategy
        for name, strategy in choices.items()
    }
    return st.fixed_dictionaries({}, optional=value)


def options(flags: dict[str, st.SearchStrategy[str]]) -> st.SearchStrategy[list[str]]:
    """Any subset of `flags`, each with a generated value, in any order."""
    pairs = st.lists(st.sampled_from(sorted(flags)), unique=True, max_size=len(flags)).flatmap(
        lambda names: st.tuples(*(st.tuples(st.just(n), flags[n]) for n in names))
    )
    return pairs.map(lambda chosen: [part for pair in chosen for part in pair])


def command_lines(sandbox: Sandbox) -> st.SearchStrategy[list[str]]:
    """Every subcommand with generated arguments; sizes that pass validation never reach real work."""
    numbers = NUMBERS | st.sampled_from(["1", "2", "0.5", "24"])
    # Nothing to write to (absent, a file, an unwritable path): simulate checks everything, then stops.
    out = st.sampled_from([[], ["--out", str(sandbox.a_file)], ["--out", "/proc/nope/run"]])
    simulation = {
        "--controllers": numbers,
        "--hours": numbers,
        "--interval-s": numbers,
        "--seed": numbers,
        "--chunk-intervals": numbers,
        "--fault-acceleration": numbers,
        "--speed": numbers,
    }
    days = st.one_of(st.dates(min_value=date(1999, 12, 25)), st.dates(), st.just(date(9999, 12, 31))).map(str) | TEXT
    moments = st.datetimes().map(lambda d: d.isoformat()) | TEXT
    port = st.just(str(sandbox.port)) | BAD_PORTS
    demo_dirs = st.sampled_from([str(sandbox.data_dir), str(sandbox.a_file), "/proc/nope"]) | NAME
    return st.one_of(
        st.tuples(st.just(["simulate"]), options(simulation), out, st.sampled_from([[], ["--to-kafka"]])),
        st.tuples(
            st.just(["broker"]),
            st.sampled_from([["start"], ["stop"], ["status"], ["restart"], []]),
            options({"--port": port, "--json": st.just("")}),
        ),
        st.tuples(
            st.just(["ingest"]),
            options({"--idle-seconds": numbers, "--flush-rows": numbers, "--flush-seconds": numbers, "--group": TEXT}),
            st.sampled_from([[], ["--follow"], ["--until-idle"], ["--follow", "--until-idle"], ["--json"]]),
        ),
        st.tuples(st.just(["load"]), st.lists(paths(sandbox), max_size=2)),
        st.tuples(
            st.just(["sql"]),
            options({"-c": TEXT | SQL}) | options({"-f": paths(sandbox)}),
            options({"--format": st.sampled_from(["table", "csv", "json"]) | TEXT}),
        ),
        st.tuples(st.just(["report"]), options({"--date": days, "--period": st.sampled_from(["day", "week"]) | TEXT})),
        st.tuples(
            st.just(["demo"]),
            options({"--controllers": numbers, "--hours": numbers, "--seed": numbers, "--start": moments}),
            options({"--data-dir": demo_dirs}),
            st.sampled_from([[], ["--fresh"]]),
        ),
        st.tuples(
            st.just(["slo"]),
            st.sampled_from([["export"], ["import"], ["import", str(sandbox.a_file)], ["import", "/proc/nope"], []]),
            # Only places nothing can be written to: a spec written into the checkout would be a side effect.
            options({"--format": st.sampled_from(["openslo", "sloth"]) | TEXT, "--slos": paths(sandbox)}),
            options({"--out": st.sampled_from(["/proc/nope/out", f"{sandbox.a_file}/out"])}),
        ),
        st.tuples(st.sampled_from([["--help"], ["--version"], [], ["nope"]])),
    ).map(lambda parts: [arg for part in parts for arg in part if arg != ""])


def outcome(answer: tuple[int, str, str]) -> str:
    """The status and the error's first words, so --hypothesis-show-statistics shows what the examples reached."""
    status, stderr, _ = answer
    words = [w for w in stderr.partition(": error: ")[2].split()[:3] if w.isascii() and w.strip("-").isalpha()]
    return f"{status} {' '.join(words[:2])}"


# ---------------------------------------------------------------------------------------------------------
# The properties.
# ---------------------------------------------------------------------------------------------------------

CHEAP_COMMANDS = st.sampled_from(
    [
        ["--help"],
        ["broker", "--help"],
        ["broker", "status"],
        ["broker", "start"],
        ["simulate", "--controllers", "2", "--hours", "1"],
        ["simulate", "--to-kafka", "--controllers", "2", "--hours", "1"],
        ["ingest", "--until-idle"],
        ["load", "."],
        ["sql", "-c", "SELECT 1"],
        ["report", "--date", "2026-01-05"],
        ["demo", "--controllers", "2", "--hours", "1"],
    ]
)


@settings(FUZZ, max_examples=ENV_EXAMPLES)
@given(data=st.data())
def test_every_setting_is_checked_at_load_and_refused_in_one_line(sandbox: Sandbox, data: st.DataObject) -> None:
    env = data.draw(environments(sandbox), label="env")
    argv = data.draw(CHEAP_COMMANDS, label="argv")
    answer = run(sandbox, argv, env)
    event(outcome(answer))
    assert_one_line_answer(*answer)


@settings(FUZZ, max_examples=ARGUMENT_EXAMPLES)
@given(data=st.data())
def test_every_argument_is_checked_and_refused_in_one_line(sandbox: Sandbox, data: st.DataObject) -> None:
    argv = data.draw(command_lines(sandbox), label="argv")
    # Only readers see the lake: the demo would (rightly) refuse it, or with --fresh replace it.
    lake = argv[:1] in (["sql"], ["report"]) and data.draw(st.booleans(), label="data dir with an empty lake")
    answer = run(sandbox, argv, {"LEO_FLEET_DATA_DIR": str(sandbox.lake_dir)} if lake else {})
    event(f"{argv[0] if argv else '(none)'}: {outcome(answer)}")
    assert_one_line_answer(*answer)


# ---------------------------------------------------------------------------------------------------------
# The cases the issue listed, as a user runs them.
# ---------------------------------------------------------------------------------------------------------


def test_the_listed_cases_are_one_line_errors_in_a_real_process(sandbox: Sandbox) -> None:
    cases = [
        ({}, ["simulate", "--controllers", "999999999999", "--out", "run"], "--controllers"),
        ({}, ["simulate", "--hours", "99999999999", "--out", "run"], "--hours"),
        ({}, ["simulate", "--fault-acceleration", "1e300", "--out", "run"], "--fault-acceleration"),
        ({}, ["report", "--date", "9999-12-31", "--period", "month"], "9999-12-31"),
        ({}, ["broker", "start", "--port", "99999"], "--port"),
        ({}, ["ui", "--port", "0"], "--port"),
        ({"LEO_FLEET_REPORTS_PORT": "65536"}, ["ui"], "LEO_FLEET_REPORTS_PORT"),
        ({}, ["demo", "--data-dir", "/proc/nope"], "/proc/nope"),
        ({"LEO_FLEET_PARTITIONS": "abc"}, ["--help"], "LEO_FLEET_PARTITIONS"),
        ({"LEO_FLEET_MAX_CLOCK_SKEW_S": "abc"}, ["ingest"], "LEO_FLEET_MAX_CLOCK_SKEW_S"),
        ({"LEO_FLEET_PARTITIONS_START": "2026-02-30"}, ["demo", "--hours", "1"], "LEO_FLEET_PARTITIONS_START"),
        ({"LEO_FLEET_LAKE_CATALOG": "garbage"}, ["sql", "-c", "SELECT 1"], "LEO_FLEET_LAKE_CATALOG"),
        ({"KAFKA_BOOTSTRAP_SERVERS": ":"}, ["ingest"], "KAFKA_BOOTSTRAP_SERVERS"),
        ({"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:abc"}, ["broker", "start"], "KAFKA_BOOTSTRAP_SERVERS"),
        ({"KAFKA_SECURITY_PROTOCOL": "BOGUS"}, ["broker", "status"], "KAFKA_SECURITY_PROTOCOL"),
        ({"KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.2:{sandbox.port}"}, ["demo", "--hours", "1"], "cannot connect"),
        ({}, ["ingest"], "cannot connect"),
        ({}, ["simulate", "--to-kafka"], "cannot connect"),
    ]
    processes = [
        (expected, subprocess.Popen([*CLI, *argv], env=_env(sandbox, env), cwd=sandbox.root, stderr=subprocess.PIPE))
        for env, argv, expected in cases
    ]
    for expected, process in processes:
        _, stderr = process.communicate(timeout=120)
        (line,) = stderr.decode().splitlines()
        assert process.returncode == 2 and expected in line, (process.args, line)


def test_the_partitions_start_is_a_setting() -> None:
    """The Dagster partitions' first day comes from Settings like every other setting (unset: from the lake)."""
    assert Settings.from_env({}).partitions_start is None
    assert Settings.from_env({"LEO_FLEET_PARTITIONS_END": "2026-01-06T00:00Z"}).partitions_end == datetime(
        2026, 1, 6, tzinfo=UTC
    )
    assert Settings.from_env({"LEO_FLEET_PARTITIONS_START": "2025-12-01"}).partitions_start == date(2025, 12, 1)
    with pytest.raises(SettingsError, match=r"^LEO_FLEET_PARTITIONS_START must be a day like 2026-01-05"):
        Settings.from_env({"LEO_FLEET_PARTITIONS_START": "1999-12-31"})


def _env(sandbox: Sandbox, overrides: dict[str, str]) -> dict[str, str]:
    base = {name: value for name, value in os.environ.items() if name not in VARIABLES}
    return {**base, "KAFKA_BOOTSTRAP_SERVERS": sandbox.kafka, "LEO_FLEET_DATA_DIR": str(sandbox.data_dir), **overrides}


def test_broker_help_shows_the_port_it_will_use(sandbox: Sandbox) -> None:
    local = run(sandbox, ["broker", "--help"], {"KAFKA_BOOTSTRAP_SERVERS": "localhost:19092"})
    remote = run(sandbox, ["broker", "--help"], {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.2:19092"})

    assert local[0] == remote[0] == 0
    assert "(default: 19092, the port of KAFKA_BOOTSTRAP_SERVERS)" in " ".join(local[2].split())
    assert "(default: none: KAFKA_BOOTSTRAP_SERVERS=127.0.0.2:19092 is not a local broker" in " ".join(
        remote[2].split()
    )


def test_a_report_over_a_window_without_data_says_so_in_one_line(
    materialized: Materialized, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("LEO_FLEET_DATA_DIR", str(materialized.data_dir))
    reports = materialized.data_dir / "reports" / "slo"
    before = sorted(reports.rglob("*")) if reports.exists() else []

    status = main(["report", "--date", "2026-02-04", "--period", "week"])

    (line,) = capsys.readouterr().err.splitlines()
    # Other tests add hours to the shared lake (an hour without telemetry, say): the span is whatever it holds now.
    with materialized.lake.connection(read_only=True) as con:
        first, last = con.execute("SELECT min(hour), max(hour) FROM sre.slo_status").fetchone()
    assert status == 2
    assert line.startswith("leo-fleet report: error: no data for 2026-W06 ([2026-02-02 00:00, 2026-02-09 00:00) UTC)")
    assert first.astimezone(UTC) == SAMPLE_SPAN.start
    assert line.endswith(
        f"the lake's SLO marts hold the hours from 2026-01-05 00:00 to {last.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
    )
    assert (sorted(reports.rglob("*")) if reports.exists() else []) == before  # no empty report written
