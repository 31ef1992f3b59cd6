"""Model versions on disk: numbered per prefix, checksummed, and refused when tampered with or missing."""

import pytest

from pipelines.lib.model_store import load_versioned, save_versioned


def test_versions_are_numbered_per_prefix_and_checksummed(tmp_path):
    first = save_versioned({"weights": [1, 2]}, {"trained_on": "day 1"}, tmp_path, "early_warning")
    second = save_versioned({"weights": [3, 4]}, {"trained_on": "day 2"}, tmp_path, "early_warning")
    other = save_versioned("another model", {}, tmp_path, "other")
    assert (first["version"], second["version"], other["version"]) == (1, 2, 1)

    obj, metadata = load_versioned(tmp_path, "early_warning")
    assert obj == {"weights": [3, 4]} and metadata["trained_on"] == "day 2" and metadata["version"] == 2
    assert load_versioned(tmp_path, "early_warning", version=1)[0] == {"weights": [1, 2]}

    (tmp_path / "early_warning-v1.pkl").write_bytes(b"tampered")
    with pytest.raises(ValueError, match="checksum"):
        load_versioned(tmp_path, "early_warning", version=1)
    with pytest.raises(FileNotFoundError, match="version 9"):
        load_versioned(tmp_path, "early_warning", version=9)
    with pytest.raises(FileNotFoundError, match="train one first"):
        load_versioned(tmp_path / "empty", "early_warning")
