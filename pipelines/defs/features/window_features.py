"""Window features per controller and hour, computed once from raw telemetry and the detection marts.

The one place the models' inputs are built: the health score, the event-rate anomalies and the early warning read
this mart back, so a backfill reads the raw history once instead of once per model.
"""

import dagster as dg
import numpy as np
import pyarrow as pa

from pipelines.lib.assets import FOLLOW_INPUTS, mart_asset, publish
from pipelines.lib.feature_mart import FEATURES, controller_slo, features_schema, window_features
from pipelines.lib.marts import mart_key
from pipelines.lib.partitions import Window
from pipelines.lib.resources import LakeResource
from pipelines.lib.telemetry import raw_key

TELEMETRY_DEPS = [raw_key("errors"), raw_key("link"), raw_key("latency"), raw_key("inventory")]
DETECTION_DEPS = [mart_key("resets"), mart_key("link_events")]


def _describe(rows: pa.Table) -> dict[str, object]:
    values = np.column_stack([rows.column(name).to_numpy(zero_copy_only=False) for name in rows.column_names[2:-1]])
    return {
        "controllers": len(set(rows.column("controller_id").to_pylist())),
        "features": values.shape[1],
        "not_observable_share": float(np.isnan(values).mean()) if values.size else 0.0,
    }


@mart_asset(
    FEATURES,
    group="features",
    description="Window features per controller at the end of each hour (trailing error, link, reset and SLO "
    "counts, trends, state, inventory and cohort), from the 24 h of telemetry and 72 h of detections before it: "
    "the one input of the health score, the event-rate anomalies and the early warning.",
    schema=features_schema(),
    deps=[*TELEMETRY_DEPS, *DETECTION_DEPS],
    automation_condition=FOLLOW_INPUTS,
)
def features(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    window = Window.of(context)
    with lake.connection() as con:
        computed = window_features(con, window, controller_slo().sli.op)
        return publish(
            lake,
            FEATURES,
            computed.to_firmware_table(),
            window,
            "window_end",
            con=con,
            closed="right",
            describe=_describe,
        )
