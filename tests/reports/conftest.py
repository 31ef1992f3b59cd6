"""The shared materialized sample lake (tests/sql/lake.py): its reports were written by the Dagster assets."""

from tests.sql.lake import sre_lake  # noqa: F401
