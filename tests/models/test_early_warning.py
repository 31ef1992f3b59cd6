from dataclasses import replace

import numpy as np
import pyarrow as pa
import pytest

from ingest.contract import DESCRIPTOR_UNCORRECTABLE_EVENT, TS
from models.early_warning import (
    EarlyWarningModel,
    LeadTime,
    new_alarms,
    observed_failures,
    ranking_table,
    reasons,
    train_early_warning,
    training_lead_time,
)
from models.evaluation import min_cost_threshold, score_ranking
from models.features import WindowFeatures
from models.link_events import INCIDENTS_SCHEMA
from models.resets import RESETS_SCHEMA
from models.series import NS_PER_HOUR, Controllers


def _planted(seed: int) -> tuple[WindowFeatures, np.ndarray]:
    """A precursor feature that rises before failures, next to pure noise."""
    rng = np.random.default_rng(seed)
    n_c, n_w = 200, 30
    labels = rng.random((n_c, n_w)) < 0.08
    precursor = labels * rng.uniform(0.5, 2.0, (n_c, n_w)) + rng.normal(0, 0.4, (n_c, n_w))
    values = np.stack([precursor, rng.normal(size=(n_c, n_w)), np.full((n_c, n_w), np.nan)], axis=2)
    ids = Controllers(pa.array([f"c{i:03d}" for i in range(n_c)]))
    firmware = np.array(["1.0"] * n_c, dtype=object)
    return WindowFeatures(
        ids, NS_PER_HOUR * (np.arange(n_w) + 1), ("precursor", "noise", "never"), values, firmware
    ), labels


def test_a_planted_precursor_is_learned_on_training_controllers_and_ranks_unseen_ones():
    features, labels = _planted(1)
    train = np.arange(200) < 120
    chosen: list[tuple[np.ndarray, np.ndarray]] = []

    def threshold(y, risk):
        chosen.append((y, risk))
        return min_cost_threshold(y, risk, cost_fn=5, cost_fp=1)

    model = train_early_warning(features, labels, train, np.ones(30, bool), choose_threshold=threshold, seed=0)
    # The threshold saw one out-of-fold risk per training row, never a test controller's.
    ((y_seen, risk_seen),) = chosen
    assert len(y_seen) == len(risk_seen) == 120 * 30
    assert model.used.tolist() == [True, True, False]
    risk = model.risk(features)
    held_out = score_ranking(labels[~train], risk[~train])
    assert held_out.roc_auc > 0.85 and held_out.pr_auc > 3 * held_out.base_rate

    table = ranking_table(features, risk, model.threshold).to_pylist()
    first_window = [row for row in table if row["window_end"] == table[0]["window_end"]]
    assert sorted(row["rank"] for row in first_window) == list(range(1, 201))
    top = min(first_window, key=lambda row: row["rank"])
    assert top["risk"] == max(row["risk"] for row in first_window)

    renamed = WindowFeatures(
        features.controllers, features.window_ends, ("a", "b", "c"), features.values, features.firmware
    )
    with pytest.raises(ValueError, match="different feature list"):
        model.risk(renamed)


@pytest.fixture(scope="module")
def planted() -> tuple[WindowFeatures, EarlyWarningModel]:
    features, labels = _planted(2)
    model = train_early_warning(
        features,
        labels,
        np.ones(200, bool),
        np.ones(30, bool),
        choose_threshold=lambda y, risk: min_cost_threshold(y, risk, 10, 1),
        seed=0,
    )
    return features, model


def test_contributions_are_exact_and_reasons_name_the_planted_precursor(planted):
    features, model = planted
    risk = model.risk(features)
    contributions = model.contributions(features)
    c, w = np.unravel_index(np.argmax(risk), risk.shape)
    # Exactly what it claims: this row's log-odds minus its log-odds with the feature at its healthiest value.
    healthiest = features.values[c : c + 1, w : w + 1].copy()
    healthiest[0, 0, 0] = model.reference[0]
    one = WindowFeatures(
        features.controllers, features.window_ends[w : w + 1], features.names, healthiest, features.firmware
    )

    def log_odds(p: float) -> float:
        return float(np.log(p / (1 - p)))

    assert contributions[c, w, 0] == pytest.approx(log_odds(risk[c, w]) - log_odds(model.risk(one)[0, 0]))
    assert (contributions[:, :, 2] == 0).all()  # never observed in training: never a reason
    assert contributions.min() >= -1e-9  # nothing in the training range is healthier than the reference
    # Additive: the contributions add up to the log-odds above the healthiest controller's, row by row.
    base = model.base_risk()
    np.testing.assert_allclose(contributions.sum(axis=2), np.log(risk / (1 - risk)) - log_odds(base), atol=1e-9)
    shares = model.risk_shares(features)
    np.testing.assert_allclose(base + shares.sum(axis=2), risk, atol=1e-12)
    explained = reasons(model, features, shares)
    top = explained[c * 30 + w]  # controller-major, as ranking_table
    assert top[0]["feature"] == "precursor" and top[0]["risk_change"] == pytest.approx(shares[c, w, 0])
    assert "healthiest in training" in top[0]["reason"]
    assert all(r["risk_change"] > 0 for row in explained for r in row)
    alarmed = (risk >= model.threshold).ravel()
    assert alarmed.any() and all(explained[i] for i in np.flatnonzero(alarmed))


def test_risk_is_calibrated_out_of_fold(planted):
    """Platt scaling on out-of-fold log-odds: the mean calibrated out-of-fold risk is the base rate."""
    _, model = planted
    labels = _planted(2)[1]
    assert model.params["max_depth"] == 1
    assert model.out_of_fold.mean() == pytest.approx(labels.mean(), abs=0.005)


def test_alerts_are_new_alarms_and_lead_time_is_measured_from_the_first_alarm(planted):
    alarm = np.array([[False, True, True, False, True], [True, True, False, False, False]])
    assert new_alarms(alarm).tolist() == [[False, True, False, False, True], [True, False, False, False, False]]

    features, model = planted
    out_of_fold = np.zeros((200, 30))
    out_of_fold[0, [9, 10]] = 0.9  # controller 0 alarms at the ends of hours 10 and 11
    planned = replace(model, out_of_fold=out_of_fold, threshold=0.5)
    ends = features.window_ends
    failures = np.array([0, 1]), np.array([ends[9] + 10 * NS_PER_HOUR, ends[5] + 3 * NS_PER_HOUR])
    lead = training_lead_time(
        planned, np.ones(200, bool), ends, failures, horizon_ns=24 * NS_PER_HOUR, min_lead_ns=NS_PER_HOUR // 4
    )
    assert lead == LeadTime(median_h=10.0, announced=1, failures=2)


def test_observed_failures_are_memory_ues_unplanned_resets_and_link_drops():
    controllers = Controllers(pa.array(["a", "b"]))
    ts = pa.array(np.array([1, 2, 3, 4, 5], "datetime64[ns]"), TS)
    ue_rows = pa.table(
        {
            "controller_id": ["a", "a", "b", "b"],
            "ts": ts.slice(0, 4),
            "record_type": ["dram", "dram", "poison", "cxl_aer_ue"],
            "descriptor": [DESCRIPTOR_UNCORRECTABLE_EVENT, 0, 0, 0],  # the second is a corrected record
            "status": [0, 0, 0, 0],  # a CXL UE without a memory bit is the link's own
        }
    )
    resets = pa.table(
        {
            "controller_id": ["a", "b", "zz", "b"],
            "reset_ts": [*ts.slice(0, 3).to_pylist(), ts[4].as_py()],
            "detected_ts": [*ts.slice(0, 3).to_pylist(), ts[4].as_py()],
            "silent": [False, True, True, False],
            # a reported firmware activation; silent; an unknown controller; a warm reset in a declared window
            "reset_kind": ["fw_activate", None, None, "warm"],
            "evidence": ["row", "epoch", "epoch", "row"],
            "planned": [False, False, False, True],
        },
        schema=RESETS_SCHEMA,
    )
    incidents = INCIDENTS_SCHEMA.empty_table()
    incidents = (
        pa.table(
            {
                **{name: pa.nulls(2, incidents.schema.field(name).type) for name in incidents.column_names},
                "controller_id": ["a", "b"],
                "kind": ["drop", "retrain"],
                "start_ts": ts.slice(3, 2),
                "detected_ts": ts.slice(3, 2),
                "evidence": ["link_down", "recovery"],
            }
        )
        .select(incidents.column_names)
        .cast(INCIDENTS_SCHEMA)
    )
    codes, times = observed_failures(ue_rows, resets, incidents, controllers)
    assert sorted(zip(codes.tolist(), times.tolist(), strict=True)) == [(0, 1), (0, 4), (1, 2), (1, 3)]
