"""Health score 0–100 per controller per hour: 100 × (1 − the latest early-warning model's calibrated risk), with
the points each reason took (models.health).

The score is the early-warning risk because that is the best health score measured on held-out data
(docs/detector_quality.md). The model is the one fitted on the lake's own history (pipelines/defs/early_warning/)
or, until there is one (a lake needs more than a day of telemetry), the one shipped with the package, fitted on a
simulated fleet; every row says which in `basis`.
"""

import dagster as dg
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from matplotlib.axes import Axes

from models.health import HEALTH_SCHEMA, health_table, score_health
from pipelines.defs.early_warning.early_warning_assets import MODEL_KEY, scoring_model
from pipelines.lib.assets import FOLLOW_INPUTS, mart_asset, publish
from pipelines.lib.feature_mart import FEATURES, read_features
from pipelines.lib.marts import mart_key
from pipelines.lib.metadata import chart, markdown_table
from pipelines.lib.partitions import Window
from pipelines.lib.resources import LakeResource

GROUP = "health"
SCORES = "health_scores"


def _describe(status: dict[str, object]):
    def describe(scores: pa.Table) -> dict[str, object]:
        if not scores.num_rows:
            return status
        latest = scores.filter(pc.equal(scores["window_end"], pc.max(scores["window_end"])))
        worst = latest.sort_by([("health", "ascending")])
        reasons = pa.array(
            [
                "; ".join(f"{r['reason']} {r['points']:.0f}: {r['why']}" for r in row)
                for row in worst["top_reasons"].to_pylist()
            ]
        )
        worst = worst.append_column("reasons", reasons)

        def plot(ax: Axes) -> None:
            ax.hist(np.asarray(scores["health"]), bins=np.linspace(0, 100, 41), color="tab:blue")
            ax.set_xlabel("health score")
            ax.set_ylabel("controller-hours")
            ax.set_yscale("log")

        return {
            **status,
            "worst_controllers": markdown_table(worst, ["controller_id", "window_end", "health", "reasons"]),
            "health_distribution": chart("Health scores in the window", plot),
            "controllers_below_50": int(pc.sum(pc.less(latest["health"], 50)).as_py() or 0),
        }

    return describe


@mart_asset(
    SCORES,
    group=GROUP,
    description="Health score 0–100 per controller at the end of each hour: 100 × (1 − the calibrated early-warning "
    "risk of a UE, reset or link drop in 15 min to 24 h), split exactly into base points and the points each reason "
    "took, with the top reasons in words; from the lake's own model, or before one is fitted the model shipped with "
    "the package (fitted on a simulated fleet), as each row's basis says.",
    schema=HEALTH_SCHEMA,
    deps=[mart_key(FEATURES), MODEL_KEY],
    automation_condition=FOLLOW_INPUTS,
)
def health_scores(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    window = Window.of(context)
    with lake.connection() as con:
        model, _, basis = scoring_model(lake, con)
        status = {"basis": basis, "alarm_below": 100 * (1 - model.threshold)}
        features = read_features(con, window)
        rows = health_table(model, features, score_health(model, features), basis)
        return publish(lake, SCORES, rows, window, "window_end", con=con, closed="right", describe=_describe(status))
