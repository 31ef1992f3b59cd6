"""The DuckDB macros give the Python answers: merged histograms, quantiles and SLIs, on Arrow and on the lake."""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from ingest.lake import connect
from ingest.settings import Settings
from models.histogram import good_events, merge_table, table_quantiles
from models.sql_macros import install_macros, statements
from tests.models.latency_rows import latency_table, random_fleet

QS = [0.0, 0.5, 0.9, 0.99, 0.999, 1.0]
KEY_SETS = [[], ["controller_id"], ["controller_id", "op"], ["host", "op"]]


@pytest.fixture
def fleet() -> pa.Table:
    table, _ = random_fleet(np.random.default_rng(11), controllers=5, windows=4)
    # A window without samples and a far-away bucket exercise the empty-row and gap paths.
    extra = latency_table([{"samples": [], "controller_id": "0x0000"}, {"samples": [9e5], "controller_id": "0x0001"}])
    return pa.concat_tables([table, extra])


@pytest.fixture
def con(fleet) -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect()
    install_macros(connection)
    connection.register("latency", fleet)
    return connection


def ordered(relation: duckdb.DuckDBPyRelation, keys: list[str]) -> pa.Table:
    return relation.order(", ".join([*keys, "scale"])).arrow().read_all()


@pytest.mark.parametrize("keys", KEY_SETS)
def test_merge_macro_equals_merge_table(con, fleet, keys):
    sql = ordered(con.sql(f"FROM leo_merge_histograms(latency, {keys})"), keys)
    python = merge_table(fleet, keys)
    for column in ("bucket_offset", "bucket_counts", "count", "min_ns", "max_ns", "slo_threshold_ns", "over_slo"):
        assert sql[column].to_pylist() == python[column].to_pylist(), column
    for key in keys:
        assert sql[key].to_pylist() == python[key].cast(pa.string()).to_pylist()
    np.testing.assert_allclose(sql["sum_ns"].to_numpy(), python["sum_ns"].to_numpy(), rtol=1e-12)


@pytest.mark.parametrize("keys", KEY_SETS)
def test_quantile_macro_equals_python(con, fleet, keys):
    sql = ordered(con.sql(f"FROM leo_quantiles(latency, {keys}, {QS})"), [*keys, "q"])
    python = table_quantiles(merge_table(fleet, keys), QS)
    values = np.array(sql["value_ns"].to_pylist(), dtype=np.float64).reshape(python.shape)
    np.testing.assert_allclose(values, python, rtol=1e-12)
    assert np.isfinite(python).all()


def test_merged_output_is_mergeable_again(con, fleet):
    """SQL merge of SQL merges equals one merge: the macro output is a valid histogram relation."""
    con.execute("CREATE TEMP TABLE per_controller AS FROM leo_merge_histograms(latency, ['controller_id', 'op'])")
    twice = ordered(con.sql("FROM leo_merge_histograms(per_controller, ['op'])"), ["op"])
    once = ordered(con.sql("FROM leo_merge_histograms(latency, ['op'])"), ["op"])
    assert twice.drop_columns(["sum_ns"]).equals(once.drop_columns(["sum_ns"]))


def test_long_form_has_one_row_per_bucket(con, fleet):
    long = con.sql("SELECT sum(n) AS n, count(*) AS rows FROM leo_histogram_long(latency)").fetchone()
    flat = pa.compute.list_flatten(fleet["bucket_counts"])
    assert long == (sum(fleet["count"].to_pylist()), len(flat))


@pytest.mark.parametrize("threshold", [1024, 512, 2048])
def test_sli_macro_equals_good_events(con, fleet, threshold):
    good, total = con.sql(f"SELECT good, total FROM leo_sli(latency, [], {threshold})").fetchone()
    assert good == good_events(fleet, threshold).sum()
    assert total == sum(fleet["count"].to_pylist())


def test_sql_refuses_what_python_refuses(con):
    with pytest.raises(duckdb.InvalidInputException, match="bucket boundary"):
        con.sql("FROM leo_sli(latency, [], 1000)").fetchall()
    mixed = latency_table([{"samples": [300.0]}, {"samples": [300.0], "slo_threshold_ns": 2048}])
    con.register("mixed", mixed)
    with pytest.raises(duckdb.InvalidInputException, match="slo_threshold_ns"):
        con.sql("FROM leo_merge_histograms(mixed, [])").fetchall()


def test_macros_work_on_the_lake_table(tmp_path, fleet):
    """On a real DuckLake (SQLite catalog, Parquet on disk) with bucket_counts stored as a LIST column."""
    con = connect(Settings(data_dir=tmp_path))
    install_macros(con)
    con.execute("CREATE SCHEMA raw")
    con.register("batch", fleet)
    con.execute("CREATE TABLE raw.latency AS FROM batch")
    con.unregister("batch")
    sql = ordered(con.sql("FROM leo_quantiles('lake.raw.latency', ['op'], [0.99, 0.999])"), ["op", "q"])
    python = table_quantiles(merge_table(fleet, ["op"]), [0.99, 0.999])
    np.testing.assert_allclose(np.array(sql["value_ns"].to_pylist()).reshape(python.shape), python, rtol=1e-12)
    filtered = con.sql(
        "WITH reads AS (FROM raw.latency WHERE op = 'read') SELECT total FROM leo_sli(reads, [], 1024)"
    ).fetchone()
    assert filtered[0] == sum(fleet.filter(pa.compute.equal(fleet["op"], "read"))["count"].to_pylist())


def test_statement_splitting_ignores_comment_only_pieces():
    text = "-- header;\n-- more\nSELECT 1;\n\n-- note\nSELECT ';' AS x;\n"
    assert statements(text) == ["-- more\nSELECT 1", "-- note\nSELECT ';' AS x"]
