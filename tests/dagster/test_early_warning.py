"""Early warning in the product on real components: a simulated fleet loaded into a real lake, every asset
materialized in a real Dagster instance over 40 h, so the model has a day of labelled history to learn from (a
window is labelled only once its 24 h horizon is in the lake). The lake's own detections label it; the truth table
is emptied before anything is materialized, to prove the model never needs it."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import dagster as dg
import numpy as np
import pytest
import sklearn

from ingest.lake.loader import load_run_directory
from ingest.settings import Settings
from ingest.sim.config import SimConfig
from ingest.sim.parquet_sink import write_run
from ingest.sim.simulator import Simulation
from models.features import WindowFeatures
from models.health import REASONS
from pipelines.defs.early_warning.early_warning_assets import MODEL_KEY, MODEL_PREFIX, SHIPPED_DIR, model_dir
from pipelines.lib.feature_mart import features_schema, read_features
from pipelines.lib.instance import install_instance_config
from pipelines.lib.model_store import load_versioned
from pipelines.lib.partitions import HOURLY, Window
from pipelines.lib.resources import LakeResource
from pipelines.materialize import PARTITION_RANGE_END_TAG, PARTITION_RANGE_START_TAG, materialize_span
from tests.sample_lake import REPO, Materialized

# Fault acceleration 200: enough failures on 150 controllers in 40 h for grouped cross-validation, few enough
# that "fails within 24 h" stays a minority label.
# The default confounders, as the demo's: every alarmed controller-hour has a reason, because reasons are shares of
# the risk above the floor (a controller healthiest on every feature), positive whenever the risk is above it.
FLEET = SimConfig(controllers=150, hours=40, seed=11, fault_acceleration=200)
SPAN = Window(FLEET.start, FLEET.start + timedelta(hours=FLEET.hours))


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory, definitions: dg.Definitions) -> Materialized:
    root = tmp_path_factory.mktemp("early-warning")
    write_run(Simulation(FLEET), root / "run", progress=False)
    load_run_directory(Settings().with_data_dir(root / "data"), root / "run")
    lake = LakeResource(data_dir=str(root / "data"))
    with lake.connection() as con:
        con.execute("DELETE FROM raw.truth_faults")
    home = install_instance_config(root / "dagster")
    runs = materialize_span(definitions, lake, SPAN, dg.DagsterInstance.from_config(str(home)))
    return Materialized(root / "data", home, lake, runs)


def rows(fleet: Materialized, sql: str) -> list[tuple]:
    with fleet.lake.connection(read_only=True) as con:
        return con.execute(sql).fetchall()


def test_the_40_hour_backfill_runs_half_a_day_at_a_time(fleet: Materialized) -> None:
    """The hourly stages run as their backfill policy splits them: 12 + 12 + 12 + 4 partitions, in order."""
    hourly = [run for run in fleet.runs if run.stage.partitions_def == HOURLY]
    assert hourly
    for run in hourly:
        keys = run.stage.partition_keys(SPAN)
        expected = [(keys[0], keys[11]), (keys[12], keys[23]), (keys[24], keys[35]), (keys[36], keys[39])]
        tags = [r.dagster_run.tags for r in run.results]
        assert [(t[PARTITION_RANGE_START_TAG], t[PARTITION_RANGE_END_TAG]) for t in tags] == expected, run.stage.label


def test_the_model_is_fitted_on_the_lakes_history_and_beats_chance(fleet: Materialized) -> None:
    assert all(run.success for run in fleet.runs)
    assert rows(fleet, "SELECT count(*) FROM raw.truth_faults") == [(0,)]
    metadata = fleet.instance.get_latest_materialization_event(MODEL_KEY).asset_materialization.metadata
    assert metadata["fitted"].value is True
    positives, total = metadata["positives"].value, metadata["training_rows"].value
    assert 0 < positives < total
    # Out-of-fold: scored on controllers the fold was not fitted on. A ranking above the base rate learned something.
    assert metadata["out_of_fold_pr_auc"].value > positives / total
    assert 0 < metadata["threshold"].value < 1
    assert 0.25 <= metadata["expected_lead_h"].value <= 24  # the label's window: 15 min to 24 h ahead


def test_every_controller_hour_is_scored_ranked_and_alarmed_at_the_trained_threshold(fleet: Materialized) -> None:
    _, stored = load_versioned(model_dir(fleet.lake), MODEL_PREFIX)
    (bad,) = rows(
        fleet,
        f"""
        WITH w AS (FROM marts.early_warning),
        hours AS (SELECT window_end, count(*) AS n, min(rank) AS lo, max(rank) AS hi,
                         count(DISTINCT rank) AS ranks FROM w GROUP BY ALL),
        alerts AS (SELECT alert, alarm, lag(alarm) OVER (PARTITION BY controller_id ORDER BY window_end) AS before
                   FROM w)
        SELECT
          (SELECT count(*) FROM w WHERE alarm <> (risk >= threshold) OR threshold <> '{stored["threshold"]!r}'::DOUBLE
                                     OR model_version <> {stored["version"]}) +
          (SELECT count(*) FROM hours WHERE NOT (lo = 1 AND hi = n AND ranks = n)) +
          (SELECT count(*) FROM alerts WHERE before IS NOT NULL AND alert <> (alarm AND NOT before))
        """,
    )[0]
    assert bad == 0
    (bases,) = rows(fleet, "SELECT list(DISTINCT basis) FROM marts.early_warning")[0]
    assert bases == [f"model v{stored['version']} fitted on this lake's {stored['training_span']}"]
    (hours, controllers, alarms, alerts) = rows(
        fleet,
        "SELECT count(DISTINCT window_end), count(DISTINCT controller_id), count(*) FILTER (WHERE alarm), "
        "count(*) FILTER (WHERE alert) FROM marts.early_warning",
    )[0]
    assert (hours, controllers) == (FLEET.hours, FLEET.controllers)
    assert 0 < alerts <= alarms < hours * controllers


def test_alarmed_controllers_have_reasons_that_move_their_risk(fleet: Materialized) -> None:
    model, _ = load_versioned(model_dir(fleet.lake), MODEL_PREFIX)
    assert rows(fleet, "SELECT count(*) FROM marts.early_warning WHERE alarm AND len(reasons) = 0") == [(0,)]
    controller, end, risk, feature, change, reason = rows(
        fleet,
        "SELECT controller_id, window_end, risk, reasons[1].feature, reasons[1].risk_change, reasons[1].reason "
        "FROM marts.early_warning WHERE alarm ORDER BY risk DESC, controller_id LIMIT 1",
    )[0]
    assert "healthiest in training" in reason and change > 0
    # The reason is what it claims: that feature's exact share of this controller's risk above the floor.
    with fleet.lake.connection(read_only=True) as con:
        features = read_features(con, Window(end - timedelta(hours=1), end))
    c = features.controllers.ids.to_pylist().index(controller)
    one = _one(features, features.values[c : c + 1].copy(), c)
    assert model.risk(one)[0, 0] == pytest.approx(risk)
    shares = model.risk_shares(one)[0, 0]
    assert shares[features.names.index(feature)] == pytest.approx(change) and change == pytest.approx(shares.max())
    assert model.base_risk() + shares.sum() == pytest.approx(risk)


def test_the_health_score_is_the_risk_in_points_that_add_up(fleet: Materialized) -> None:
    points = " + ".join(f"h.points_{reason}" for reason in REASONS)
    (scored, unmatched, unexplained, top_mismatch) = rows(
        fleet,
        f"""SELECT count(*), count(*) FILTER (WHERE abs(h.health - 100 * (1 - w.risk)) > 1e-9),
                   count(*) FILTER (WHERE abs(100 - h.health - h.base_points - ({points})) > 1e-9),
                   count(*) FILTER (WHERE len(h.top_reasons) > 0 AND h.top_reasons[1].points <
                                    greatest({points.replace(" + ", ", ")}) - 1e-9)
            FROM marts.health_scores h JOIN marts.early_warning w USING (controller_id, window_end)""",
    )[0]
    assert scored == FLEET.hours * FLEET.controllers
    assert (unmatched, unexplained, top_mismatch) == (0, 0, 0)
    worst = rows(fleet, "SELECT top_reasons[1].why FROM sre.fleet_health ORDER BY health LIMIT 1")[0][0]
    assert "healthiest in training" in worst
    # Once the lake has a model of its own, the score rests on it (before, on the shipped one) and says so.
    (bases,) = rows(fleet, "SELECT list(DISTINCT basis) FROM marts.health_scores")[0]
    assert len(bases) == 1 and bases[0].startswith("model v") and "fitted on this lake's" in bases[0]


def _one(features: WindowFeatures, values: np.ndarray, c: int) -> WindowFeatures:
    return WindowFeatures(
        features.controllers, features.window_ends, features.names, values, features.firmware[c : c + 1]
    )


def test_the_sre_view_and_the_report_show_the_controllers_at_risk(fleet: Materialized) -> None:
    (view_rows, mart_rows, explained) = rows(
        fleet,
        "SELECT (SELECT count(*) FROM sre.early_warning), (SELECT count(*) FROM marts.early_warning), "
        "(SELECT count(*) FROM sre.early_warning WHERE alarm AND reasons LIKE '%healthiest in training%')",
    )[0]
    assert view_rows == mart_rows and explained > 0
    top = rows(
        fleet,
        "SELECT controller_id FROM sre.early_warning WHERE window_end = TIMESTAMPTZ '2026-01-06 00:00:00+00' "
        "ORDER BY risk DESC, controller_id LIMIT 1",
    )[0][0]
    report = (fleet.data_dir / "reports" / "slo" / "2026-01-05" / "report.md").read_text()
    section = report.split("## Early warning: controllers at risk", 1)[1].split("\n## ", 1)[0]
    assert top in section and "healthiest in training" in section
    metadata = fleet.instance.get_latest_materialization_event(
        dg.AssetKey(["marts", "early_warning"])
    ).asset_materialization.metadata
    assert "healthiest in training" in metadata["top_controllers"].value


def test_without_a_model_of_its_own_the_lake_is_scored_by_the_shipped_one(materialized: Materialized) -> None:
    """The shared six-hour sample cannot label a 24 h horizon, so it fits no model and says why; its every
    controller-hour is still scored, ranked and alarmed by the shipped model, and each row says so."""
    event = materialized.instance.get_latest_materialization_event(MODEL_KEY).asset_materialization
    assert event.metadata["fitted"].value is False and "more than a day" in event.metadata["reason"].value
    assert not Path(model_dir(materialized.lake)).exists()
    shipped, stored = load_versioned(SHIPPED_DIR, MODEL_PREFIX)
    (scored, hours, controllers, features, wrong, bases) = rows(
        materialized,
        f"""SELECT count(*), count(DISTINCT window_end), count(DISTINCT controller_id),
                   (SELECT count(*) FROM marts.features f WHERE f.window_end IN
                       (SELECT DISTINCT window_end FROM marts.early_warning)),
                   count(*) FILTER (WHERE alarm <> (risk >= threshold) OR threshold <> '{shipped.threshold!r}'::DOUBLE
                                    OR model_version <> {stored["version"]} OR NOT risk BETWEEN 0 AND 1),
                   list(DISTINCT basis)
            FROM marts.early_warning""",
    )[0]
    assert scored > 0 and scored == features == hours * controllers and wrong == 0
    assert len(bases) == 1 and bases[0].startswith(f"shipped model v{stored['version']} fitted on a simulated fleet")
    scores = materialized.instance.get_latest_materialization_event(dg.AssetKey(["marts", "early_warning"]))
    assert scores.asset_materialization.metadata["basis"].value == bases[0]


def test_the_shipped_model_fits_the_feature_mart_and_was_held_out_on_another_fleet() -> None:
    """The model a lake without its own rests on: it loads (checksum verified) with the installed scikit-learn,
    reads exactly the feature mart's columns, was fitted on one simulated fleet and held out on another, and
    docs/detector_quality.md quotes its held-out figures as stored with it."""
    model, stored = load_versioned(SHIPPED_DIR, MODEL_PREFIX)
    assert list(model.feature_names) == features_schema().names[2:-1]
    assert stored["sklearn_version"] == sklearn.__version__
    assert stored["training_fleet"]["seed"] != stored["held_out_fleet"]["seed"]
    doc = (REPO / "docs" / "detector_quality.md").read_text()
    for metric in ("ROC-AUC", "PR-AUC (random = base rate)"):
        detector, baseline = stored["held_out"][metric]
        assert f"| {metric} | {detector} | {baseline} |" in doc
