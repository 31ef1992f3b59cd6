"""deploy/systemd/leo-fleet-collect.service cannot rot: its ExecStart is a command line `leo-fleet collect` accepts,
its state directory is the one path it may write, and `systemd-analyze verify` (where installed) has nothing to say."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.cli import build_parser
from tests.ingest.kafka.helpers import CLI
from tests.sample_lake import REPO

UNIT = REPO / "deploy" / "systemd" / "leo-fleet-collect.service"


def _settings() -> dict[str, list[str]]:
    """Every `Key=value` of the unit (continuation lines joined), values in file order."""
    text = re.sub(r"\\\n\s*", " ", UNIT.read_text())
    settings: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def _exec_start() -> list[str]:
    """ExecStart's words with ${VAR} taken from the unit's own Environment= defaults (the env file may be absent)."""
    settings = _settings()
    defaults = dict(pair.split("=", 1) for line in settings["Environment"] for pair in shlex.split(line))
    [command] = settings["ExecStart"]
    return [re.sub(r"\$\{(\w+)\}", lambda m: defaults[m.group(1)], word) for word in shlex.split(command)]


def test_exec_start_is_a_collect_command_line_the_cli_accepts():
    argv = _exec_start()
    flags = [word for word in argv if word.startswith("--")]
    helped = subprocess.run([*CLI, "collect", "--help"], capture_output=True, text=True, timeout=60, check=True)

    assert Path(argv[0]).name == "leo-fleet" and argv[1] == "collect"
    assert flags and all(re.search(rf"(^|\s){re.escape(flag)}(?=[\s,=]|$)", helped.stdout) for flag in flags), flags
    assert len(flags) == len(set(flags))
    args = build_parser().parse_args(argv[1:])  # values too: a bad one exits with status 2
    assert (args.command, args.interval, args.sysfs_root) == ("collect", 10.0, Path("/sys"))
    assert args.rack.strip() and args.region.strip()


def test_the_state_dir_is_the_only_writable_path():
    settings = _settings()
    args = build_parser().parse_args(_exec_start()[1:])

    assert settings["ProtectSystem"] == ["strict"]
    assert [Path("/var/lib") / directory for directory in settings["StateDirectory"]] == [args.state_dir]
    assert [Path(path) for path in settings["ReadWritePaths"]] == [args.state_dir]
    assert settings["User"] != ["root"] and settings["CapabilityBoundingSet"] == [""]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verify_has_no_complaints(tmp_path):
    """Offline: the unit's program is pointed at this environment's leo-fleet, which verify requires to exist."""
    installed = re.search(r"^ExecStart=(\S+)", UNIT.read_text(), re.M).group(1)
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text().replace(installed, str(Path(sys.executable).with_name("leo-fleet"))))

    verified = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)

    assert (verified.returncode, verified.stderr) == (0, "")
