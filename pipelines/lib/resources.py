"""Dagster resources: the lake, opened through the same settings as the CLI and the loader."""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
from pydantic import PrivateAttr

from ingest.lake import connect, detach
from ingest.lake.fault_injection import ENV as CRASH_AT_ENV
from ingest.lake.fault_injection import CrashPoints
from ingest.settings import ENV_PREFIX, Settings

# The settings that say where the lake is: resource field -> environment variable.
LAKE_SETTINGS = {
    "data_dir": f"{ENV_PREFIX}DATA_DIR",
    "lake_catalog": f"{ENV_PREFIX}LAKE_CATALOG",
    "lake_data_path": f"{ENV_PREFIX}LAKE_DATA_PATH",
}

# Per lake: DuckDB sessions with the extensions loaded and no lake attached, for the next `connection`.
_IDLE_SESSIONS: defaultdict[Settings, list[duckdb.DuckDBPyConnection]] = defaultdict(list)


class LakeResource(dg.ConfigurableResource):
    """Attaches the lake per use, so no Dagster process holds the lake between steps.

    The fields are the settings that say where the lake is; unset ones take the defaults of `Settings`, whose
    checks apply to them as to the CLI's, and everything else (Kafka, S3 credentials) comes from the environment.
    `from_environment` configures them as `dg.EnvVar`s: Dagster reads each in the process of the run and records
    its name, never its value (a catalog's password stays out of the instance's storage).
    """

    data_dir: str | None = None
    lake_catalog: str | None = None  # LEO_FLEET_LAKE_CATALOG, e.g. postgres:dbname=lake host=db
    lake_data_path: str | None = None  # LEO_FLEET_LAKE_DATA_PATH, e.g. s3://bucket/lake/
    crash_at: str | None = None  # LEO_FLEET_CRASH_AT=stage:n, reliability tests only (fault_injection.py)
    _crash_points: CrashPoints | None = PrivateAttr(default=None)

    @classmethod
    def from_environment(cls, env: Mapping[str, str] | None = None, **values: str) -> LakeResource:
        """An `EnvVar` for each of LAKE_SETTINGS and the crash switch set in `env` (the process environment by
        default); `values` are given outright (the demo's data directory, a test's temporary lake)."""
        env = os.environ if env is None else env
        names = {**LAKE_SETTINGS, "crash_at": CRASH_AT_ENV}
        variables = {field: dg.EnvVar(name) for field, name in names.items() if env.get(name)}
        return cls(**{**variables, **values})

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """One count of crash-point visits per run (a launched run has a process of its own)."""
        self._crash_points = CrashPoints.parse(self.crash_at or "")

    @property
    def crash_points(self) -> CrashPoints | None:
        return self._crash_points

    @property
    def settings(self) -> Settings:
        """`Settings.from_env` over the environment with the configured fields on top. Outside a run an `EnvVar`
        field is still the variable's name: it is read here, as Dagster would in a run."""
        configured = {}
        for field, name in LAKE_SETTINGS.items():
            value = getattr(self, field)
            if isinstance(value, dg.EnvVar):
                value = value.get_value()
            if value:
                configured[name] = value
        return Settings.from_env({**os.environ, **configured})

    @property
    def model_dir(self) -> Path:
        """Versioned model files (the early-warning model): next to the lake, so one data dir holds everything."""
        return self.settings.model_dir

    @contextmanager
    def connection(self, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """The lake, attached for this use only; the session underneath (extensions loaded, ~0.3 s to make) is
        kept for the next use of the same lake when this one ends cleanly, and closed otherwise."""
        settings = self.settings
        idle = _IDLE_SESSIONS[settings]
        try:
            session = idle.pop()  # atomic: threads (sensors, a threaded executor) never share a session
        except IndexError:
            session = None
        con = connect(settings, read_only=read_only, idle=session)
        try:
            yield con
            detach(con)
        except BaseException:
            con.close()
            raise
        idle.append(con)
