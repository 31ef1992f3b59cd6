"""The tests' sample telemetry starts on the default partitions start: pin it before anything imports the Dagster
partitions, so the tests never take their start from a lake in the developer's own data directory."""

import os

from ingest.settings import DEFAULT_PARTITIONS_START, PARTITIONS_START_ENV

os.environ.setdefault(PARTITIONS_START_ENV, DEFAULT_PARTITIONS_START.isoformat())
