"""Detections and features computed a group of controllers at a time (memory bounded by the group) equal one pass
over the whole fleet, the way the assets computed them before: the groups change what is held, not the answer."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pyarrow as pa

from ingest.contract import TOPIC_ERRORS, TOPIC_LATENCY, TOPIC_LINK
from models.features import (
    COHORT_FEATURE,
    ERRORS_COLUMNS,
    LATENCY_COLUMNS,
    LINK_COLUMNS,
    Detections,
    Telemetry,
    WindowFeatures,
    build_features,
)
from models.link_events import INCIDENTS_SCHEMA
from models.resets import RESETS_SCHEMA
from models.series import Controllers
from pipelines.defs.detections.detections import detect
from pipelines.lib.feature_mart import DETECTION_HISTORY, FEATURE_HISTORY, controller_slo, window_features
from pipelines.lib.marts import read_mart
from pipelines.lib.partitions import Window, to_ns
from pipelines.lib.telemetry import read_inventory, read_stream
from tests.sample_lake import SAMPLE_SPAN, Materialized

# Groups of 64 of the sample's 200 controllers: three full groups and a partial one.
GROUP_SIZE = 64
# The features' window: its first hours read their 24 h of history from the sample's first hours.
WINDOW = Window(SAMPLE_SPAN.start + timedelta(hours=2), SAMPLE_SPAN.end)


def _rows(table: pa.Table) -> list[str]:
    """The rows in an order of their own (groups emit them controller by controller)."""
    return sorted(map(repr, table.to_pylist()))


def test_detections_by_group_equal_one_pass(materialized: Materialized) -> None:
    with materialized.lake.connection(read_only=True) as con:
        grouped = detect(con, SAMPLE_SPAN, GROUP_SIZE)
        errors = read_stream(con, TOPIC_ERRORS, SAMPLE_SPAN, ERRORS_COLUMNS)
        link = read_stream(con, TOPIC_LINK, SAMPLE_SPAN, LINK_COLUMNS)
        inventory = read_inventory(con)
    controllers = Controllers.of(inventory["controller_id"], errors["controller_id"], link["controller_id"])
    whole = Detections.from_tables(errors, link, controllers)
    assert len(controllers) > 3 * GROUP_SIZE
    assert whole.resets.num_rows and whole.incidents.num_rows  # something to get wrong
    assert grouped.resets.schema == whole.resets.schema and grouped.incidents.schema == whole.incidents.schema
    assert _rows(grouped.resets) == _rows(whole.resets)
    assert _rows(grouped.incidents) == _rows(whole.incidents)


def test_features_by_group_equal_one_pass(materialized: Materialized) -> None:
    op = controller_slo().sli.op
    history = WINDOW.widened(FEATURE_HISTORY)
    with materialized.lake.connection(read_only=True) as con:
        grouped = window_features(con, WINDOW, op, GROUP_SIZE)
        telemetry = Telemetry(
            errors=read_stream(con, TOPIC_ERRORS, history, ERRORS_COLUMNS),
            link=read_stream(con, TOPIC_LINK, history, LINK_COLUMNS),
            latency=read_stream(con, TOPIC_LATENCY, history, LATENCY_COLUMNS, f"memory_tier = 'cxl' AND op = '{op}'"),
            inventory=read_inventory(con),
        )
        detected = WINDOW.widened(DETECTION_HISTORY)
        detections = Detections(
            resets=read_mart(con, "resets", RESETS_SCHEMA, "reset_ts", detected),
            incidents=read_mart(con, "link_events", INCIDENTS_SCHEMA, "start_ts", detected),
        )
    whole = build_features(
        telemetry,
        detections,
        telemetry.controllers(),
        start_ns=to_ns(history.start),
        end_ns=to_ns(history.end),
        latency_op=op,
    ).windows_after(to_ns(WINDOW.start))
    assert isinstance(grouped, WindowFeatures)
    assert len(whole.controllers) > 3 * GROUP_SIZE
    assert len(whole.window_ends) == 4
    # The cohort feature compares controllers across groups: it must vary for the comparison to test that.
    assert np.unique(whole.column(COHORT_FEATURE)).size > 1
    assert grouped.controllers.ids.equals(whole.controllers.ids)
    assert grouped.names == whole.names
    np.testing.assert_array_equal(grouped.window_ends, whole.window_ends)
    np.testing.assert_array_equal(grouped.firmware, whole.firmware)
    np.testing.assert_array_equal(grouped.values, whole.values)
