"""The sample-data lake with every asset materialized (marts, sre views, reports), built once per test process
and shared by tests/sql and tests/reports: the build is the expensive part, the tests only read it.

The one test that writes (the loader streaming more telemetry during the documented queries) adds rows after the
sample's span, so the marts, the sre views over them and every window the other tests read stay as built.
"""

from __future__ import annotations

import dagster as dg
import pytest

from pipelines.definitions import defs
from pipelines.materialize import materialize_span
from tests.dagster.conftest import SAMPLE_SPAN, Materialized, instance_home, sample_lake

_BUILT: dict[str, Materialized] = {}


def materialized_lake(factory: pytest.TempPathFactory) -> Materialized:
    if "lake" not in _BUILT:
        root = factory.mktemp("sre-lake")
        lake = sample_lake(root / "data")
        home = instance_home(root / "dagster")
        runs = materialize_span(defs(), lake, SAMPLE_SPAN, dg.DagsterInstance.from_config(str(home)))
        _BUILT["lake"] = Materialized(root / "data", home, lake, runs)
    return _BUILT["lake"]


@pytest.fixture(scope="session")
def sre_lake(tmp_path_factory: pytest.TempPathFactory) -> Materialized:
    return materialized_lake(tmp_path_factory)
