"""Dagster definitions and the `leo-fleet` command line, built on `ingest/` and `models/`."""
