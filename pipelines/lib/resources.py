"""Dagster resources: the lake, opened through the same settings as the CLI and the loader."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb

from ingest.lake import connect
from ingest.settings import Settings


class LakeResource(dg.ConfigurableResource):
    """Opens a short-lived connection per use, so no Dagster process holds the lake between steps.

    `data_dir` overrides LEO_FLEET_DATA_DIR (tests point it at a temporary lake); everything else comes from the
    environment through `Settings.from_env()`.
    """

    data_dir: str | None = None

    @property
    def settings(self) -> Settings:
        settings = Settings.from_env()
        return settings.with_data_dir(Path(self.data_dir)) if self.data_dir else settings

    @property
    def model_dir(self) -> Path:
        """Versioned model files (anomaly model): next to the lake, so one data dir holds everything."""
        return self.settings.model_dir

    @contextmanager
    def connection(self, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        con = connect(self.settings, read_only=read_only)
        try:
            yield con
        finally:
            con.close()
