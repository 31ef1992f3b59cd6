"""Fitted model versions on disk: `{prefix}-v{N}.pkl` beside its JSON metadata, the pickle checked against the
SHA-256 in the metadata before it is loaded. Dagster's model assets (the early-warning model) store here; models/
only fits and scores.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import re
from pathlib import Path


def save_versioned(obj: object, metadata: dict, directory: Path, prefix: str) -> dict:
    """Write `{prefix}-v{N}.pkl` and its JSON metadata (`metadata` plus version and sha256) with the next free
    version N; returns the stored metadata."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    version = max(_versions(directory, prefix), default=0) + 1
    blob = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stored = {**metadata, "version": version, "sha256": hashlib.sha256(blob).hexdigest()}
    (directory / f"{prefix}-v{version}.pkl").write_bytes(blob)
    # Metadata last: a version only exists once its description does.
    (directory / f"{prefix}-v{version}.json").write_text(json.dumps(stored, indent=2))
    return stored


def _versions(directory: Path, prefix: str) -> list[int]:
    pattern = re.compile(rf"^{re.escape(prefix)}-v(\d+)\.json$")
    return [int(m.group(1)) for p in directory.glob(f"{prefix}-v*.json") if (m := pattern.match(p.name))]


def load_versioned(directory: Path, prefix: str, version: int | None = None) -> tuple[object, dict]:
    """(object, metadata) of the given (default: latest) version, the pickle verified against its checksum.

    Pickles execute code when loaded: only point this at a model directory you control.
    """
    directory = Path(directory)
    versions = _versions(directory, prefix)
    if not versions:
        raise FileNotFoundError(f"no {prefix} model in {directory}: train one first")
    version = max(versions) if version is None else version
    if version not in versions:
        raise FileNotFoundError(f"no {prefix} model version {version} in {directory} (have {sorted(versions)})")
    metadata = json.loads((directory / f"{prefix}-v{version}.json").read_text())
    blob = (directory / f"{prefix}-v{version}.pkl").read_bytes()
    if hashlib.sha256(blob).hexdigest() != metadata["sha256"]:
        raise ValueError(f"{prefix}-v{version}.pkl does not match the checksum in its metadata")
    return pickle.loads(blob), metadata
