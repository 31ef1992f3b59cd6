"""The shared materialized sample lake (tests/sql/lake.py); the broker fixture comes from tests/conftest.py."""

from tests.sql.lake import sre_lake  # noqa: F401
