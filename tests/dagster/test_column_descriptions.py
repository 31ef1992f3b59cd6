"""Every column of the marts and raw tables an operator reads says what it holds, in the catalog and on each
materialization: one description per column, written where the table's schema is defined (ingest.contract.described).
"""

from __future__ import annotations

import dagster as dg

from ingest.contract import DESCRIPTION
from ingest.lake.raw_tables import FENCE_PREFIX, RAW, stored_schemas
from pipelines.lib.marts import MARTS
from tests.sample_lake import Materialized


def _columns(value: object) -> dict[str, str | None]:
    schema = getattr(value, "schema", value)  # a TableSchemaMetadataValue on an event, a TableSchema on a spec
    return {column.name: column.description for column in schema.columns}


def _marts(definitions: dg.Definitions) -> list[dg.AssetKey]:
    graph = definitions.resolve_asset_graph()
    return sorted(key for key in graph.materializable_asset_keys if key.has_prefix([MARTS]))


def test_every_mart_column_has_a_description(definitions: dg.Definitions) -> None:
    graph = definitions.resolve_asset_graph()
    marts = _marts(definitions)
    assert len(marts) >= 12
    for key in marts:
        columns = _columns(graph.get(key).metadata["dagster/column_schema"])
        assert columns and all(columns.values()), (key, [name for name, text in columns.items() if not text])


def test_each_materialization_carries_the_descriptions(definitions: dg.Definitions, materialized: Materialized) -> None:
    """The UI shows a materialization's own column schema where it has one (a table replaced whole has none: the
    definition's shows): the rows a step wrote keep their descriptions."""
    instance = materialized.instance
    graph = definitions.resolve_asset_graph()
    compared = 0
    for key in _marts(definitions):
        event = instance.get_latest_materialization_event(key)
        assert event is not None, key
        written = event.asset_materialization.metadata.get("dagster/column_schema")
        if written is not None:
            assert _columns(written) == _columns(graph.get(key).metadata["dagster/column_schema"]), key
            compared += 1
    assert compared >= 10


def test_every_raw_asset_column_has_a_description(definitions: dg.Definitions) -> None:
    graph = definitions.resolve_asset_graph()
    raw = [key for key in graph.get_all_asset_keys() if key.has_prefix([RAW])]
    assert len(raw) >= 6
    for key in raw:
        columns = _columns(graph.get(key).metadata["dagster/column_schema"])
        assert columns and all(columns.values()), (key, [name for name, text in columns.items() if not text])


def test_every_raw_table_in_the_lake_is_described(materialized: Materialized) -> None:
    """Each table the loader keeps in `raw` (rows with their provenance, offsets, ledger, quarantine, offset
    resets, status), as the lake holds it, has a description for every column in the schema it was created from."""
    with materialized.lake.connection() as con:
        stored = con.execute(
            "SELECT table_name, list(column_name ORDER BY column_index) FROM duckdb_columns() "
            "WHERE database_name = current_database() AND schema_name = ? AND NOT starts_with(table_name, ?) GROUP "
            "BY table_name",
            [RAW, FENCE_PREFIX],
        ).fetchall()
    schemas = stored_schemas()
    assert {name for name, _ in stored} == set(schemas)
    for name, columns in stored:
        fields = {field.name: field for field in schemas[name]}
        assert columns == list(fields), name
        undescribed = [column for column, field in fields.items() if not (field.metadata or {}).get(DESCRIPTION)]
        assert not undescribed, (name, undescribed)
