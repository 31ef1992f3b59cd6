"""Anomaly model versions on disk: numbered, checksummed, and refused when scored on other features."""

import numpy as np
import pytest

from models.anomaly import ModelMismatchError, score_windows, train_isolation_forest
from pipelines.lib.model_store import load_model, save_model
from tests.models.test_anomaly import _features


def test_isolation_forest_is_versioned_checksummed_and_refuses_other_features(tmp_path):
    rng = np.random.default_rng(7)
    names = ("a", "b", "c")
    values = rng.normal(size=(80, 10, 3))
    values[3, 9] = [9.0, -9.0, 9.0]  # one odd window
    values[5, 4, 1] = np.nan  # an unobservable feature is filled with the training median
    features = _features(values, names)
    train_rows = np.ones(80, bool), np.arange(10) < 8  # the odd window is not in training
    model = train_isolation_forest(features, *train_rows, seed=0, n_estimators=50)
    assert save_model(model, tmp_path).version == 1
    assert save_model(model, tmp_path).version == 2
    loaded = load_model(tmp_path)
    assert loaded.metadata.version == 2
    assert loaded.metadata.feature_names == list(names)
    assert loaded.metadata.training_rows == 640
    scores = score_windows(loaded, features)
    assert np.isfinite(scores).all()
    assert scores[3, 9] == scores.max() and scores[3, 9] > loaded.metadata.alarm_threshold

    with pytest.raises(ModelMismatchError, match="missing \\['c'\\]"):
        score_windows(loaded, _features(values[:, :, :2], ("a", "b")))
    with pytest.raises(ModelMismatchError, match="different order"):
        score_windows(loaded, _features(values, ("b", "a", "c")))
    (tmp_path / "iforest-v1.pkl").write_bytes(b"tampered")
    with pytest.raises(ValueError, match="checksum"):
        load_model(tmp_path, version=1)
    with pytest.raises(FileNotFoundError, match="version 9"):
        load_model(tmp_path, version=9)
    with pytest.raises(FileNotFoundError, match="train one first"):
        load_model(tmp_path / "empty")
