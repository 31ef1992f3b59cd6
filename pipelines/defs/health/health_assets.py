"""Health score 0–100 per controller per hour, with the reasons that cost it points.

Fleet-relative reasons are measured against a baseline fitted once on a training span (`health_baseline`), so
scores of later hours never depend on the hours they score.
"""

from dataclasses import replace

import dagster as dg
import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from matplotlib.axes import Axes

from ingest.contract import TS, described
from models.health import HEALTH_SCHEMA, HealthPolicy, fit_baseline, health_table, score_health
from pipelines.lib.assets import FOLLOW_INPUTS, mart_asset, publish
from pipelines.lib.feature_mart import FEATURES, TrainingConfig, controller_slo, read_features, training_rows
from pipelines.lib.marts import MARTS, mart_key, replace_table
from pipelines.lib.metadata import chart, markdown_table
from pipelines.lib.partitions import Window
from pipelines.lib.resources import LakeResource

GROUP = "health"
BASELINE = "health_baseline"
SCORES = "health_scores"
BASELINE_SCHEMA = pa.schema(
    [
        described("feature", pa.string(), "the health feature", nullable=False),
        described(
            "baseline",
            pa.float64(),
            "the fleet's baseline_quantile of the feature over the training window",
            nullable=False,
        ),
        described(
            "baseline_quantile", pa.float64(), "the quantile of the fleet taken as the baseline, 0-1", nullable=False
        ),
        described("training_start", TS, "start of the training window (UTC)", nullable=False),
        described("training_end", TS, "end of the training window (UTC)", nullable=False),
        described("training_controllers", pa.int64(), "controllers in the training window", nullable=False),
    ]
)


@mart_asset(
    BASELINE,
    group=GROUP,
    description="The fleet baseline of every fleet-relative health feature (its 99th percentile), fitted on the "
    "training span's non-held-out controllers.",
    schema=BASELINE_SCHEMA,
    deps=[mart_key(FEATURES)],
    partitions_def=None,
    automation_condition=None,
)
def health_baseline(config: TrainingConfig, lake: LakeResource) -> dg.MaterializeResult:
    with lake.connection(read_only=True) as con:
        span = config.span(con)
        features = read_features(con, span)
    controllers, windows = training_rows(features)
    policy = fit_baseline(features, (controllers, windows), HealthPolicy.for_slo(controller_slo()))
    rows = pa.table(
        {
            "feature": list(policy.baseline),
            "baseline": list(policy.baseline.values()),
            "baseline_quantile": [policy.baseline_quantile] * len(policy.baseline),
            "training_start": [span.start] * len(policy.baseline),
            "training_end": [span.end] * len(policy.baseline),
            "training_controllers": [int(controllers.sum())] * len(policy.baseline),
        },
        schema=BASELINE_SCHEMA,
    )
    with lake.connection() as con:
        replace_table(con, BASELINE, rows)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": rows.num_rows,
            "training_span": str(span),
            "training_controllers": int(controllers.sum()),
            "baseline": markdown_table(rows, ["feature", "baseline"], limit=len(policy.baseline)),
        }
    )


def _policy(con: duckdb.DuckDBPyConnection) -> HealthPolicy:
    """slos.yaml's SLO budget and page burn factor with the fitted fleet baseline."""
    try:
        rows = con.execute(f"SELECT feature, baseline FROM {MARTS}.{BASELINE}").fetchall()
    except duckdb.CatalogException:
        raise ValueError(f"no fleet baseline yet: materialize {MARTS}/{BASELINE} first") from None
    return replace(HealthPolicy.for_slo(controller_slo()), baseline=dict(rows))


def _describe(scores: pa.Table) -> dict[str, object]:
    latest = scores.filter(pc.equal(scores["window_end"], pc.max(scores["window_end"])))
    worst = latest.sort_by([("health", "ascending")])
    reasons = pa.array(
        [", ".join(f"{r['reason']} {r['points']:.0f}" for r in row) for row in worst["top_reasons"].to_pylist()]
    )
    worst = worst.append_column("reasons", reasons)

    def plot(ax: Axes) -> None:
        ax.hist(np.asarray(scores["health"]), bins=np.linspace(0, 100, 41), color="tab:blue")
        ax.set_xlabel("health score")
        ax.set_ylabel("controller-hours")
        ax.set_yscale("log")

    return {
        "worst_controllers": markdown_table(worst, ["controller_id", "window_end", "health", "reasons"]),
        "health_distribution": chart("Health scores in the window", plot),
        "controllers_below_50": int(pc.sum(pc.less(latest["health"], 50)).as_py() or 0),
    }


@mart_asset(
    SCORES,
    group=GROUP,
    description="Health score 0–100 per controller at the end of each hour, the points each reason took, and the "
    "top reasons, from the shared window features and the fitted fleet baseline.",
    schema=HEALTH_SCHEMA,
    deps=[mart_key(FEATURES), mart_key(BASELINE)],
    automation_condition=FOLLOW_INPUTS,
)
def health_scores(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    window = Window.of(context)
    with lake.connection() as con:
        policy = _policy(con)
        features = read_features(con, window)
        rows = health_table(features, score_health(features, policy))
        return publish(lake, SCORES, rows, window, "window_end", con=con, closed="right", describe=_describe)
