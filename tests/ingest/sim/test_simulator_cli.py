"""`leo-fleet simulate`: a run on disk with a one-line summary, and one-line errors for bad arguments."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from pipelines.cli import main


def test_simulate_writes_a_run_and_prints_one_summary_line(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["simulate", "--controllers", "20", "--hours", "0.5", "--seed", "3", "--out", str(out)]) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    assert len(printed) == 1 and str(out) in printed[0] and "latency" in printed[0]
    run = json.loads((out / "run.json").read_text())
    assert run["config"]["controllers"] == 20 and run["config"]["seed"] == 3
    for name, count in run["rows"].items():
        assert pq.ParquetFile(out / f"{name}.parquet").metadata.num_rows == count
    assert not list(out.glob("*.partial"))


def test_fault_acceleration_reaches_the_simulator(tmp_path):
    out = tmp_path / "run"
    arguments = ["simulate", "--controllers", "5", "--hours", "0.1", "--fault-acceleration", "50", "--out", str(out)]
    assert main(arguments) == 0
    assert json.loads((out / "run.json").read_text())["config"]["fault_acceleration"] == 50


@pytest.mark.parametrize(("profile", "windows"), [("default", True), ("off", False)])
def test_the_confounder_profile_reaches_the_simulator(tmp_path, profile, windows):
    out = tmp_path / "run"
    arguments = ["simulate", "--controllers", "60", "--hours", "12", "--confounders", profile, "--out", str(out)]
    assert main(arguments) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["config"]["confounders"]["profile"] == profile
    assert (run["rows"]["maintenance"] > 0) is windows


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--interval-s", "7"], "must divide 3600"),
        (["--hours", "0.001"], "at least one 60 s interval"),
        (["--hours", "-2"], "must be a number above 0 and at most 8784"),
        (["--hours", "99999999999"], "at most 8784"),
        (["--controllers", "ten"], "whole number"),
        (["--confounders", "loud"], "invalid choice: 'loud' (choose from 'off', 'default', 'heavy')"),
        (["--controllers", "٣"], "whole number"),  # int() reads Arabic-Indic digits; the CLI does not
        (["--controllers", "999999999999"], "from 1 to 1,000,000"),
        (["--controllers", "100000", "--hours", "8784"], "too much to simulate at once"),
        (["--controllers", "500", "--hours", "6", "--raw-samples"], "small fleets"),
        (["--fault-acceleration", "0"], "above 0"),
        (["--fault-acceleration", "inf"], "at most 1e+06"),
        (["--fault-acceleration", "nan"], "at most 1e+06"),
        (["--fault-acceleration", "1e300"], "at most 1e+06"),
        (["--fault-acceleration", "fast"], "must be a number"),
    ],
)
def test_bad_arguments_get_one_line_errors(tmp_path, capsys, arguments, message):
    with pytest.raises(SystemExit) as exit_info:
        code = main(["simulate", *arguments, "--out", str(tmp_path / "x")])
        raise SystemExit(code)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and message in error


def test_out_must_not_be_a_file(tmp_path, capsys):
    target = tmp_path / "file"
    target.write_text("")
    assert main(["simulate", "--controllers", "5", "--hours", "0.1", "--out", str(target)]) == 2
    assert "not a directory" in capsys.readouterr().err


@pytest.mark.parametrize("arguments", [[], ["--speed", "60", "--out", "x"]])
def test_parquet_output_needs_a_directory_and_no_kafka_pacing(capsys, arguments):
    assert main(["simulate", "--controllers", "5", "--hours", "0.1", *arguments]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "--out DIR" in error
