import numpy as np
import pyarrow as pa
import pytest

from models.early_warning import ranking_table, train_early_warning
from models.evaluation import min_cost_threshold, score_ranking
from models.features import WindowFeatures
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
