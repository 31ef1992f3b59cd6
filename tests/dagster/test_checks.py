"""Checks on deliberately corrupted partitions of a real lake: the blocking check fails, names the bad rows, and
stops what depends on it; the same assets on an untouched hour pass."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from ingest.lake.raw_tables import ROW_SCHEMAS, Batch, Position, Quarantined, Rows, message_digest, write_batch
from pipelines.lib.marts import mart_key
from pipelines.lib.resources import LakeResource
from tests.sample_lake import sample_lake

CORRUPT_HOUR = ("2026-01-05 02:00:00+00", "2026-01-05 03:00:00+00")
SLO_KEYS = [mart_key(name) for name in ("latency_rollups", "slo_sli", "slo_compliance", "slo_breaches")]


@pytest.fixture(scope="module")
def corrupted_lake(tmp_path_factory: pytest.TempPathFactory) -> LakeResource:
    """sample_data/ with one hour of histograms whose counts no longer match their buckets, and one link counter
    that goes backwards inside its epoch."""
    lake = sample_lake(Path(tmp_path_factory.mktemp("corrupted")))
    start, end = CORRUPT_HOUR
    with lake.connection() as con:
        con.execute(
            f"UPDATE raw.latency SET count = count + 1 WHERE window_start >= '{start}' AND window_start < '{end}' "
            "AND controller_id IN (SELECT DISTINCT controller_id FROM raw.latency ORDER BY ALL LIMIT 3)"
        )
        con.execute(
            f"""UPDATE raw.link SET aer_cor_total = 0 WHERE (controller_id, port, ts) IN (
                    SELECT (controller_id, port, ts) FROM raw.link
                    WHERE ts >= '{start}' AND ts < '{end}' AND aer_cor_total > 0 ORDER BY ALL LIMIT 1)"""
        )
    return lake


def run(definitions: dg.Definitions, lake: LakeResource, keys: list[dg.AssetKey], hour: str):
    """The assets writing `keys` (a step that writes several marts once), materialized for one hour."""
    return dg.materialize(
        list(dict.fromkeys(definitions.get_assets_def(key) for key in keys)),
        partition_key=hour,
        resources={"lake": lake},
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


def evaluations(result) -> dict[tuple[str, str], dg.AssetCheckEvaluation]:
    return {(e.asset_key.path[-1], e.check_name): e for e in result.get_asset_check_evaluations()}


def test_inconsistent_histograms_block_the_slo_marts(definitions: dg.Definitions, corrupted_lake: LakeResource):
    result = run(definitions, corrupted_lake, SLO_KEYS, "2026-01-05-02:00")
    checks = evaluations(result)
    assert not result.success
    for asset in ("latency_rollups", "slo_sli"):
        check = checks[(asset, "histogram_counts_consistent")]
        assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
        # Three controllers x every (tier, op, window) row of theirs in that hour.
        with corrupted_lake.connection(read_only=True) as con:
            (expected,) = con.execute(
                "SELECT count(*) FROM raw.latency WHERE list_sum(bucket_counts) <> count"
            ).fetchone()
        assert check.metadata["failing"].value == expected > 0
    materialized = {e.asset_key for e in result.get_asset_materialization_events()}
    assert mart_key("slo_compliance") not in materialized and mart_key("slo_breaches") not in materialized


def test_the_same_assets_on_an_untouched_hour_pass(definitions: dg.Definitions, corrupted_lake: LakeResource):
    result = run(definitions, corrupted_lake, SLO_KEYS, "2026-01-05-04:00")
    assert result.success
    assert all(check.passed for check in evaluations(result).values())
    assert {e.asset_key for e in result.get_asset_materialization_events()} == set(SLO_KEYS)


def test_a_counter_going_backwards_fails_the_link_check(definitions: dg.Definitions, corrupted_lake: LakeResource):
    result = run(definitions, corrupted_lake, [mart_key("link_events")], "2026-01-05-02:00")
    check = evaluations(result)[("link_events", "link_counters_monotonic")]
    assert not check.passed and not result.success
    # Only the zeroed row is a decrease: the series' next value rises again.
    assert check.metadata["failing"].value == 1
    assert "aer_cor_total" in check.metadata["examples"].value


def test_raw_table_checks_catch_schema_drift_and_quarantined_messages(
    definitions: dg.Definitions, corrupted_lake: LakeResource
) -> None:
    now = datetime.now(UTC)
    # Nine clean messages (empty ones, so the sample's rows stay as they are), then a quarantined tenth.
    clean = [Position("leo.link", 0, offset, digest=message_digest(b"%d" % offset)) for offset in range(9)]
    position = Position("leo.link", 0, 9, digest=message_digest(b"{oops"))
    with corrupted_lake.connection() as con:
        con.execute("ALTER TABLE raw.errors ADD COLUMN firmware_note VARCHAR")
        write_batch(
            con,
            Batch(
                rows=[Rows("link", ROW_SCHEMAS["link"].empty_table(), p) for p in clean],
                quarantined=[Quarantined(position, now, "bad_json", "line 1: not JSON", b"{oops", None, [])],
                positions=[*clean, position],
            ),
            now,
        )
    result = definitions.resolve_job_def("raw_checks").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), resources={"lake": corrupted_lake}
    )
    checks = evaluations(result)
    drift = checks[("errors", "schema_matches_contract")]
    assert not drift.passed and "firmware_note" in drift.metadata["examples"].value
    assert checks[("link", "schema_matches_contract")].passed
    quarantine = checks[("link", "quarantine_rate")]
    assert not quarantine.passed and quarantine.severity == dg.AssetCheckSeverity.WARN
    assert (quarantine.metadata["checked"].value, quarantine.metadata["failing"].value) == (10, 1)
    assert "bad_json" in quarantine.metadata["examples"].value
