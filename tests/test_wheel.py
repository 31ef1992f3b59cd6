"""The project ships as a wheel: built from this checkout, installed (not editable) into a fresh venv outside it,
where `leo-fleet demo` and a `leo-fleet sql` query over the `sre` views work with nothing read from the checkout.

To stay fast the wheel goes in with `--no-deps`, and the dev venv's site-packages (the locked dependencies) is made
visible by a plain path line in a .pth file: the .pth files inside that directory, the editable install's finder
among them, are not processed, so the checkout cannot leak in. The test asserts that it did not.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import sysconfig
import time
import zipfile
from pathlib import Path

from ingest.kafka.broker import free_port
from tests.sample_lake import REPO

PACKAGES = ("ingest", "models", "pipelines")
# Files the code reads at run time (importlib.resources, Dagster's project file): each must be in the wheel.
DATA_SUFFIXES = {".sql", ".yaml", ".toml", ".pkl", ".json"}  # .pkl and .json: the shipped model
# Settings and interpreter variables of this process that must not reach the installed one.
FOREIGN_ENV = ("LEO_FLEET_", "KAFKA_", "AWS_", "DAGSTER_", "PYTHON", "VIRTUAL_ENV")


def _run(command: list[str | Path], **options) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(part) for part in command], capture_output=True, text=True, check=False, **options)
    assert done.returncode == 0, f"{command}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done


def _build_wheel(scratch: Path) -> Path:
    """The wheel of a copy of what the build reads (in-tree builds leave a build/ whose stale files would ship),
    with the build backend pinned by constraints.txt, as `make install` builds."""
    source = scratch / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    for package in PACKAGES:
        shutil.copytree(REPO / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    constraints = REPO / "constraints.txt"
    pip = [sys.executable, "-m", "pip"]
    _run(
        [*pip, "wheel", "-q", "--no-deps", "-c", constraints, "--build-constraint", constraints, "-w", scratch, source]
    )
    (wheel,) = scratch.glob("leo_fleet-*.whl")
    return wheel


def _package_data() -> set[str]:
    return {
        path.relative_to(REPO).as_posix()
        for package in PACKAGES
        for path in (REPO / package).rglob("*")
        if path.suffix in DATA_SUFFIXES
    }


def _fresh_venv(venv: Path, wheel: Path) -> Path:
    """A venv holding the wheel (not editable) and, through one .pth line, the dev venv's dependencies."""
    _run([sys.executable, "-m", "venv", "--without-pip", venv])
    python = venv / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", "--no-index", wheel])
    site_packages = _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    (Path(site_packages) / "leo-fleet-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv / "bin"


def test_the_wheel_installs_outside_the_checkout_and_runs_the_demo_and_sql(tmp_path: Path) -> None:
    started = time.perf_counter()
    wheel = _build_wheel(tmp_path)
    in_wheel = set(zipfile.ZipFile(wheel).namelist())
    assert _package_data() <= in_wheel, _package_data() - in_wheel
    assert {"pipelines/dagster.yaml", "pipelines/sql/views.sql", "models/sql/histogram.sql"} <= in_wheel
    built = time.perf_counter()

    venv = tmp_path / "venv"
    bin_dir = _fresh_venv(venv, wheel)
    elsewhere = tmp_path / "elsewhere"  # the working directory: neither the checkout nor the venv
    elsewhere.mkdir()
    env = {name: value for name, value in os.environ.items() if not name.startswith(FOREIGN_ENV)}
    env |= {"LEO_FLEET_DATA_DIR": str(tmp_path / "data"), "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}"}
    where = _run(
        [
            bin_dir / "python",
            "-c",
            "import ingest, models, pipelines; print(ingest.__file__, models.__file__, pipelines.__file__, sep='\\n')",
        ],
        cwd=elsewhere,
        env=env,
    )
    for module_file in map(Path, where.stdout.split()):
        assert module_file.is_relative_to(venv) and not module_file.is_relative_to(REPO), module_file
    installed = time.perf_counter()

    leo_fleet = bin_dir / "leo-fleet"
    try:
        _run([leo_fleet, "demo", "--controllers", "20", "--hours", "2"], cwd=elsewhere, env=env, timeout=600)
    finally:
        _run([leo_fleet, "broker", "stop"], cwd=elsewhere, env=env, timeout=60)  # a failed demo leaves it running
    demo_done = time.perf_counter()
    query = "SELECT controller_id, health FROM sre.fleet_health ORDER BY controller_id"
    done = _run([leo_fleet, "sql", "--format", "csv", "-c", query], cwd=elsewhere, env=env, timeout=120)
    header, *rows = list(csv.reader(done.stdout.splitlines()))
    assert header == ["controller_id", "health"] and len(rows) == 20, done.stdout[-2000:]
    print(
        f"\nwheel test: build {built - started:.1f} s, venv + install {installed - built:.1f} s, "
        f"demo {demo_done - installed:.1f} s, sql {time.perf_counter() - demo_done:.1f} s, "
        f"total {time.perf_counter() - started:.1f} s"
    )
