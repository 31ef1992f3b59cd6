"""The Dagster code location: every domain folder under `defs/` plus the resources they share.

`dagster dev` from the repository root finds this module through `[tool.dagster]` in pyproject.toml.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from pipelines.resources import LakeResource


@dg.definitions
def defs() -> dg.Definitions:
    loaded = dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
    shared = dg.Definitions(
        resources={"lake": LakeResource()},
        # Two cores on the reference machine: more parallel steps would only contend for them.
        executor=dg.multiprocess_executor.configured({"max_concurrent": 2}),
    )
    return dg.Definitions.merge(loaded, shared)
