"""Every column of the marts an operator reads says what it holds, in the catalog and on each materialization:
one description per column, written where the mart's schema is defined (ingest.contract.described)."""

from __future__ import annotations

import dagster as dg

from pipelines.lib.marts import MARTS
from tests.sample_lake import Materialized

# The features mart's columns are the feature builder's names (models/features): not described yet.
UNDESCRIBED = {"features"}


def _columns(value: object) -> dict[str, str | None]:
    schema = getattr(value, "schema", value)  # a TableSchemaMetadataValue on an event, a TableSchema on a spec
    return {column.name: column.description for column in schema.columns}


def _marts(definitions: dg.Definitions) -> list[dg.AssetKey]:
    graph = definitions.resolve_asset_graph()
    keys = [key for key in graph.materializable_asset_keys if key.has_prefix([MARTS])]
    return sorted(key for key in keys if key.path[-1] not in UNDESCRIBED)


def test_every_mart_column_has_a_description(definitions: dg.Definitions) -> None:
    graph = definitions.resolve_asset_graph()
    marts = _marts(definitions)
    assert len(marts) >= 12
    for key in marts:
        columns = _columns(graph.get(key).metadata["dagster/column_schema"])
        assert columns and all(columns.values()), (key, [name for name, text in columns.items() if not text])


def test_each_materialization_carries_the_descriptions(definitions: dg.Definitions, materialized: Materialized) -> None:
    """The UI shows a materialization's own column schema where it has one (a table replaced whole, such as
    health_baseline, has none: the definition's shows): the rows a step wrote keep their descriptions."""
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
