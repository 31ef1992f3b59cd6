"""Anomaly model versions on disk: `iforest-v{N}.pkl` beside its JSON metadata, the pickle checked against the
SHA-256 in the metadata before it is loaded. Dagster's anomaly assets and `leo-fleet evaluate --model-dir` store here;
models/ only fits and scores.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import re
from dataclasses import asdict
from pathlib import Path

from models.anomaly import MODEL_PREFIX, AnomalyModel, ModelMetadata

_VERSION_FILE = re.compile(rf"^{MODEL_PREFIX}-v(\d+)\.json$")


def save_model(model: AnomalyModel, directory: Path) -> ModelMetadata:
    """Write `iforest-v{N}.pkl` and its JSON metadata with the next free version N; returns the stored metadata."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    version = max(_versions(directory), default=0) + 1
    blob = pickle.dumps(model.forest, protocol=pickle.HIGHEST_PROTOCOL)
    checksum = hashlib.sha256(blob).hexdigest()
    metadata = ModelMetadata(**{**asdict(model.metadata), "version": version, "sha256": checksum})
    (directory / f"{MODEL_PREFIX}-v{version}.pkl").write_bytes(blob)
    # Metadata last: a version only exists once its description does.
    (directory / f"{MODEL_PREFIX}-v{version}.json").write_text(json.dumps(asdict(metadata), indent=2))
    return metadata


def _versions(directory: Path) -> list[int]:
    return [int(m.group(1)) for p in directory.glob(f"{MODEL_PREFIX}-v*.json") if (m := _VERSION_FILE.match(p.name))]


def load_model(directory: Path, version: int | None = None) -> AnomalyModel:
    """Load the given (default: latest) version, verifying the pickle against the checksum in its metadata.

    Pickles execute code when loaded: only point this at a model directory you control.
    """
    directory = Path(directory)
    versions = _versions(directory)
    if not versions:
        raise FileNotFoundError(f"no {MODEL_PREFIX} model in {directory}: train one first")
    version = max(versions) if version is None else version
    if version not in versions:
        raise FileNotFoundError(f"no {MODEL_PREFIX} model version {version} in {directory} (have {sorted(versions)})")
    metadata = ModelMetadata(**json.loads((directory / f"{MODEL_PREFIX}-v{version}.json").read_text()))
    blob = (directory / f"{MODEL_PREFIX}-v{version}.pkl").read_bytes()
    if hashlib.sha256(blob).hexdigest() != metadata.sha256:
        raise ValueError(f"{MODEL_PREFIX}-v{version}.pkl does not match the checksum in its metadata")
    return AnomalyModel(pickle.loads(blob), metadata)
