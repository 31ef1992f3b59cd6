"""sre.latency_anomalies and the report's figure over it, on a lake table written from models.latency_anomalies:
the view forms the same episodes as models.latency_anomalies.episodes and the report keeps those of its window."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from models.latency_anomalies import episodes, score
from pipelines.lib.partitions import Window
from pipelines.reports.figures import latency_anomalies
from pipelines.sql import VIEWS_FILE

T0 = datetime(2026, 1, 5, tzinfo=UTC)
TS = pa.timestamp("ns", tz="UTC")
VIEW = re.search(r"CREATE OR REPLACE VIEW sre\.latency_anomalies AS.*?;\n", VIEWS_FILE.read_text(), re.S).group(0)


def series(controller: str, values: np.ndarray) -> pa.Table:
    size = values.size
    return pa.table(
        {
            "controller_id": [controller] * size,
            "host": [f"host-{controller}"] * size,
            "memory_tier": ["cxl"] * size,
            "op": ["read"] * size,
            "quantile": ["p99"] * size,
            "window_start": pa.array([T0 + timedelta(hours=h) for h in range(size)], TS),
            "window_s": pa.array([3600] * size, pa.uint32()),
            "value_ns": values,
        }
    )


@pytest.fixture
def scored() -> pa.Table:
    """One scored week: two controllers with steps up at different hours, the first one burning its SLO then."""
    rng = np.random.default_rng(17)
    parts = []
    for controller, step in (("0xa", 60), ("0xb", 150)):
        values = 500.0 * np.exp(rng.normal(0, 0.01, 168))
        values[step : step + 3] = 1200.0
        parts.append(series(controller, values))
    burn = pa.table(
        {"controller_id": ["0xa"], "window_start": pa.array([T0 + timedelta(hours=60)], TS), "burn_1h": [20.0]}
    )
    return score(pa.concat_tables(parts), burn)


@pytest.fixture
def con(scored: pa.Table) -> duckdb.DuckDBPyConnection:
    """A lake-like database: marts.latency_anomalies holding `scored`, sre.inventory and the view."""
    db = duckdb.connect()
    db.execute("CREATE SCHEMA marts; CREATE SCHEMA sre")
    db.execute("CREATE TABLE sre.inventory (controller_id VARCHAR, region VARCHAR, rack VARCHAR)")
    db.execute("INSERT INTO sre.inventory VALUES ('0xa', 'eu', 'r1'), ('0xb', 'eu', 'r2')")
    db.register("scored", scored)
    db.execute("CREATE TABLE marts.latency_anomalies AS SELECT * FROM scored")
    db.execute(VIEW)
    return db


def test_the_view_forms_the_models_episodes(con: duckdb.DuckDBPyConnection, scored: pa.Table) -> None:
    expected = episodes(scored)
    columns = ", ".join(f'"{name}"' for name in expected.column_names)
    viewed = con.execute(f"SELECT {columns} FROM sre.latency_anomalies").to_arrow_table()
    order = [("controller_id", "ascending"), ("quantile", "ascending"), ("start", "ascending")]
    assert expected.num_rows >= 2
    assert viewed.cast(expected.schema).sort_by(order).equals(expected.sort_by(order))


def test_the_report_keeps_the_episodes_of_its_window_worst_first(con: duckdb.DuckDBPyConnection) -> None:
    window = Window(T0 + timedelta(hours=100), T0 + timedelta(hours=168))
    shown = latency_anomalies(con, window)
    assert shown.num_rows and set(shown["controller_id"].to_pylist()) == {"0xb"}
    assert shown["peak_score"].to_pylist() == sorted(shown["peak_score"].to_pylist(), reverse=True)
    whole = latency_anomalies(con, Window(T0, T0 + timedelta(hours=168)))
    assert whole.num_rows == con.execute("SELECT count(*) FROM sre.latency_anomalies").fetchone()[0]
    assert 20.0 in whole["burn_1h"].to_pylist()
