"""marts.latency_anomalies over the sample lake (a real lake materialized by every asset): every controller's and
the fleet's p99 and p99.9 of every hour scored, the fleet's read from merged histograms by independent SQL, and
sre.latency_anomalies forming exactly the episodes of the flagged hours."""

from __future__ import annotations

from datetime import timedelta

from models.latency_anomalies import FLEET, PARAMS, SCORED_SCHEMA, SERIES_KEYS
from pipelines.defs.latency.anomalies import NAME, controller_batches, scored
from pipelines.lib.marts import mart_key, read_mart
from pipelines.lib.partitions import Window
from tests.sample_lake import Materialized


def rows(materialized: Materialized, sql: str) -> list[tuple]:
    with materialized.lake.connection(read_only=True) as con:
        return con.execute(sql).fetchall()


def test_every_controller_hour_is_scored_with_the_rollups_quantiles(materialized: Materialized) -> None:
    matching = rows(
        materialized,
        """SELECT count(*) FROM marts.latency_rollups r
           CROSS JOIN (VALUES ('p99'), ('p99.9')) q(quantile)
           LEFT JOIN marts.latency_anomalies a USING (controller_id, host, memory_tier, op, window_start)
           WHERE a.quantile = q.quantile AND a.value_ns IS NOT DISTINCT FROM
                 CASE q.quantile WHEN 'p99' THEN r.p99_ns ELSE r.p999_ns END""",
    )[0][0]
    (expected,) = rows(materialized, "SELECT 2 * count(*) FROM marts.latency_rollups")[0]
    (controllers,) = rows(materialized, f"SELECT count(*) FROM marts.latency_anomalies WHERE host != '{FLEET}'")[0]
    assert expected > 0 and matching == expected == controllers


def test_the_fleet_series_is_every_histogram_merged(materialized: Materialized) -> None:
    """The fleet's quantiles equal those of all controllers' buckets merged per hour (leo_quantiles), not a mean."""
    differing = rows(
        materialized,
        f"""WITH merged AS (
                SELECT * FROM leo_quantiles(marts.latency_rollups, ['memory_tier', 'op', 'window_start'], [0.99, 0.999])
            )
            SELECT count(*), count(*) FILTER (WHERE abs(a.value_ns - m.value_ns) > 1e-6 * m.value_ns)
            FROM marts.latency_anomalies a JOIN merged m
              ON a.memory_tier = m.memory_tier AND a.op = m.op AND a.window_start = m.window_start
             AND m.q = CASE a.quantile WHEN 'p99' THEN 0.99 ELSE 0.999 END
            WHERE a.controller_id = '{FLEET}'""",
    )[0]
    (groups,) = rows(
        materialized, "SELECT 2 * count(DISTINCT (memory_tier, op, window_start)) FROM marts.latency_rollups"
    )[0]
    assert differing == (groups, 0)


def test_flags_and_episodes_follow_the_scores(materialized: Materialized) -> None:
    (wrong,) = rows(
        materialized,
        f"""SELECT count(*) FROM marts.latency_anomalies
            WHERE anomalous != (score >= {PARAMS.flag_threshold}) OR anomalous != (episode_start IS NOT NULL)
               OR episode_start > window_start OR (expected_ns IS NULL) != (normal_low_ns IS NULL)""",
    )[0]
    episodes = rows(materialized, "SELECT count(*) FROM sre.latency_anomalies")[0][0]
    (distinct,) = rows(
        materialized,
        """SELECT count(DISTINCT (controller_id, host, memory_tier, op, quantile, episode_start))
           FROM marts.latency_anomalies WHERE anomalous""",
    )[0]
    assert wrong == 0 and episodes == distinct


def test_the_materialization_shows_its_episodes(materialized: Materialized) -> None:
    """One single-run backfill wrote every hour, so its metadata counts the view's episodes and shows the worst."""
    event = materialized.instance.get_latest_materialization_event(mart_key("latency_anomalies"))
    metadata = event.asset_materialization.metadata
    (episodes,) = rows(materialized, "SELECT count(*) FROM sre.latency_anomalies")[0]
    assert metadata["episodes"].value == episodes
    assert metadata["top_episodes"].value.startswith("| controller_id" if episodes else "_no latency anomaly")
    assert "data:image/png;base64," in metadata["fleet_p99"].value


def test_the_report_has_the_section(materialized: Materialized) -> None:
    directory = materialized.data_dir / "reports" / "slo" / "2026-01-05"
    assert "## Latency anomalies" in (directory / "report.md").read_text()
    assert (directory / "latency-anomalies.png").read_bytes()[:4] == b"\x89PNG"


def test_scoring_two_controllers_at_a_time_gives_the_marts_rows(materialized: Materialized) -> None:
    """The asset reads and scores its controllers in batches (the fleet's series last): batches of two give the rows
    that the materialization's one batch wrote."""
    with materialized.lake.connection(read_only=True) as con:
        first, last = con.execute("SELECT min(window_start), max(window_start) FROM marts.latency_anomalies").fetchone()
        every_hour = Window(first, last + timedelta(hours=1))
        assert len(controller_batches(con, every_hour, 2)) > 1
        batched = scored(con, every_hour, batch=2)
        written = read_mart(con, NAME, SCORED_SCHEMA, "window_start", every_hour)
    order = [(name, "ascending") for name in (*SERIES_KEYS, "window_start")]
    assert batched.num_rows == written.num_rows > 0
    assert batched.sort_by(order).equals(written.sort_by(order))
