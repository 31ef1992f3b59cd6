"""The Dagster instance a data directory holds, and the UI over it.

The demo records its runs there and `leo-fleet ui` (so `make ui`) serves them: both take the instance
configuration, the UI's address and the `dagster dev` command from here.
"""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path

# Storage, run queue and pool limits: package data, so a wheel carries it too.
INSTANCE_CONFIG = resources.files("pipelines").joinpath("dagster.yaml")
# The UI has no authentication: loopback unless told otherwise (docs/security.md).
UI_HOST = "127.0.0.1"
UI_PORT = 3000
# The programs of the environment running this code (a checkout's .venv or any venv the wheel is installed in).
BIN = Path(sys.executable).parent


def install_instance_config(home: Path) -> Path:
    """`home` (a DAGSTER_HOME) holding INSTANCE_CONFIG as its dagster.yaml."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_bytes(INSTANCE_CONFIG.read_bytes())
    return home


def dagster_dev(host: str, port: int) -> list[str]:
    """`dagster dev` for the leo_fleet code location, named by module so it loads from any directory."""
    return [str(BIN / "dagster"), "dev", "-m", "pipelines.definitions", "-h", host, "-p", str(port)]
