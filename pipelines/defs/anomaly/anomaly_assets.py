"""Anomalies: event-rate anomalies (reset loops, flapping links, firmware cohorts), which need no training.

An IsolationForest over the window features used to sit here too; held out it lost to the static count rule on
event F1, so it was removed (docs/detector_quality.md). Failure risk comes from the early-warning model.
"""

import dagster as dg
import pyarrow as pa

from models.anomaly import EVENT_ANOMALY_SCHEMA, event_rate_anomalies
from pipelines.lib.assets import FOLLOW_INPUTS, mart_asset, publish
from pipelines.lib.feature_mart import FEATURES, read_features
from pipelines.lib.marts import mart_key
from pipelines.lib.metadata import count_by, markdown_table
from pipelines.lib.partitions import Window
from pipelines.lib.resources import LakeResource

GROUP = "anomaly"
EVENTS = "event_anomalies"


def _describe_events(anomalies: pa.Table) -> dict[str, object]:
    return {
        "by_kind": markdown_table(count_by(anomalies, ["scope", "kind"])),
        "least_plausible": markdown_table(anomalies.sort_by([("p_value", "ascending")])),
    }


@mart_asset(
    EVENTS,
    group=GROUP,
    description="Controllers (reset loops, flapping links) and firmware cohorts whose 24 h event count is "
    "implausible at the rest of the fleet's rate (Poisson tail, Bonferroni-corrected); no training needed.",
    schema=EVENT_ANOMALY_SCHEMA,
    deps=[mart_key(FEATURES)],
    automation_condition=FOLLOW_INPUTS,
)
def event_anomalies(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    window = Window.of(context)
    with lake.connection() as con:
        anomalies = event_rate_anomalies(read_features(con, window))
        return publish(
            lake, EVENTS, anomalies, window, "window_end", con=con, closed="right", describe=_describe_events
        )
