-- leo-fleet latency histogram macros for DuckDB: the SQL twin of models/histogram.py, tested equal to it.
--
-- Install with models.sql_macros.install_macros(con). Table macros take the NAME of any relation (table,
-- view, CTE; quoted or not, e.g. latency, 'lake.raw.latency') holding latency histogram rows: scale,
-- bucket_offset, bucket_counts (dense list from bucket_offset), count, sum_ns, min_ns, max_ns,
-- slo_threshold_ns, over_slo. Extra columns are ignored unless named as keys. To work on a filtered set,
-- name a view or CTE of it:
--
--   WITH reads AS (FROM lake.raw.latency WHERE op = 'read' AND memory_tier = 'cxl'
--                  AND window_start >= now() - INTERVAL 1 DAY)
--   FROM leo_quantiles(reads, ['controller_id'], [0.99, 0.999]);
--
-- `keys` lists grouping column names; [] merges everything. `scale` is always a grouping column as well, so
-- histograms at different scales are never added (the fleet uses one). Quantile estimator and its bound:
-- models/histogram.py (inside the bucket, following the density's slope across its neighbours; clamped to
-- min/max; error at most one bucket width, base - 1).
-- Statements end with a semicolon at the end of a line; the loader splits on that.

-- One row per bucket of every histogram row: the row's other columns, bucket_idx and its count n.
CREATE OR REPLACE MACRO leo_histogram_long(rel) AS TABLE
    SELECT * EXCLUDE (bucket_counts),
           bucket_offset + generate_subscripts(bucket_counts, 1) - 1 AS bucket_idx,
           unnest(bucket_counts) AS n
    FROM query_table(rel);

-- Per group: the non-empty merged buckets (bucket_idx, n) with grp = struct of the keys and scale. The buckets are
-- added up per integer group id, not per struct: hashing a struct of strings for every bucket of every row cost
-- four times the rest of a 28-day quantile; the structs are hashed once per row to find their ids.
CREATE OR REPLACE MACRO leo_merged_buckets(rel, keys) AS TABLE
    WITH keyed AS (
        SELECT struct_pack(*COLUMNS(c -> list_contains(keys, c) OR c = 'scale')) AS grp, bucket_offset, bucket_counts
        FROM query_table(rel)),
    ids AS (SELECT grp, row_number() OVER () AS gid FROM (SELECT DISTINCT grp FROM keyed)),
    merged AS (
        SELECT gid, bucket_idx, sum(n) AS n
        FROM (SELECT gid, bucket_offset + generate_subscripts(bucket_counts, 1) - 1 AS bucket_idx,
                     unnest(bucket_counts) AS n
              FROM keyed JOIN ids ON keyed.grp IS NOT DISTINCT FROM ids.grp)
        GROUP BY gid, bucket_idx
        HAVING sum(n) > 0)
    SELECT ids.grp, merged.bucket_idx, merged.n FROM merged JOIN ids USING (gid);

-- Per group: the counters, combined as models.histogram.merge_table combines them (windows without samples
-- do not count towards min/max; over_slo adds only at one slo_threshold_ns, else an error).
CREATE OR REPLACE MACRO leo_merged_counters(rel, keys) AS TABLE
    SELECT struct_pack(*COLUMNS(c -> list_contains(keys, c) OR c = 'scale')) AS grp,
           sum(count)::UBIGINT AS count,
           sum(sum_ns)::DOUBLE AS sum_ns,
           min(min_ns) FILTER (WHERE count > 0)::UINTEGER AS min_ns,
           max(max_ns) FILTER (WHERE count > 0)::UINTEGER AS max_ns,
           CASE WHEN min(slo_threshold_ns) = max(slo_threshold_ns) THEN min(slo_threshold_ns)::UINTEGER
                ELSE error('rows with different slo_threshold_ns cannot be merged') END AS slo_threshold_ns,
           sum(over_slo)::UBIGINT AS over_slo
    FROM query_table(rel)
    GROUP BY ALL;

-- Merged histograms in the table layout (keys, scale, bucket_offset, bucket_counts, counters), trimmed to the
-- first and last non-empty bucket like models.histogram.merge_table; the output is itself mergeable.
CREATE OR REPLACE MACRO leo_merge_histograms(rel, keys) AS TABLE
    WITH merged AS (FROM leo_merged_buckets(rel, keys)),
    spans AS (SELECT grp, min(bucket_idx) AS lo, max(bucket_idx) AS hi FROM merged GROUP BY grp),
    cells AS (SELECT s.grp, s.lo, r.i FROM spans s, range(s.lo, s.hi + 1) r(i)),
    dense AS (
        SELECT c.grp, any_value(c.lo) AS lo, list(coalesce(m.n, 0)::UBIGINT ORDER BY c.i) AS counts
        FROM cells c LEFT JOIN merged m ON m.grp = c.grp AND m.bucket_idx = c.i
        GROUP BY c.grp)
    SELECT unnest(c.grp),
           coalesce(d.lo, 0)::INTEGER AS bucket_offset,
           coalesce(d.counts, []::UBIGINT[]) AS bucket_counts,
           c.* EXCLUDE (grp)
    FROM leo_merged_counters(rel, keys) c LEFT JOIN dense d ON d.grp = c.grp;

-- Quantiles of the merged histogram of each group: one row per group and q, value_ns NULL when empty.
CREATE OR REPLACE MACRO leo_quantiles(rel, keys, qs) AS TABLE
    WITH merged AS (FROM leo_merged_buckets(rel, keys)),
    running AS (
        SELECT grp, bucket_idx, n,
               sum(n) OVER w AS upto,
               sum(n) OVER (PARTITION BY grp) AS total,
               CASE WHEN lag(bucket_idx) OVER w = bucket_idx - 1 THEN lag(n) OVER w ELSE 0 END AS n_under,
               CASE WHEN lead(bucket_idx) OVER w = bucket_idx + 1 THEN lead(n) OVER w ELSE 0 END AS n_over
        FROM merged
        WINDOW w AS (PARTITION BY grp ORDER BY bucket_idx)),
    wanted AS (
        SELECT c.grp, c.grp.scale AS scale, c.min_ns, c.max_ns, unnest(qs)::DOUBLE AS q,
               coalesce(t.total, 0)::DOUBLE AS total
        FROM leo_merged_counters(rel, keys) c
        LEFT JOIN (SELECT DISTINCT grp, total FROM running) t ON t.grp = c.grp),
    found AS (
        -- The bucket holding the nearest-rank order statistic: the first whose running count reaches
        -- ceil(q * total).
        SELECT w.*, w.q * w.total AS rank,
               arg_min(struct_pack(b := r.bucket_idx, n := r.n, upto := r.upto, n_under := r.n_under,
                                   n_over := r.n_over), r.bucket_idx) AS hit
        FROM wanted w
        LEFT JOIN running r ON r.grp = w.grp AND r.upto >= greatest(ceil(w.q * w.total), 1)
        GROUP BY ALL),
    shaped AS (
        -- Share f of the bucket below the rank, and the slope of the density across it (log space).
        SELECT *, (rank - (hit.upto - hit.n)::DOUBLE) / hit.n::DOUBLE AS f,
               0.5 * ln((hit.n_over::DOUBLE + 0.5) / (hit.n_under::DOUBLE + 0.5)) AS s
        FROM found)
    SELECT unnest(grp), q,
           least(greatest(pow(2, (hit.b + CASE WHEN s = 0 THEN f ELSE ln(1 + f * (exp(s) - 1)) / s END)
                                 / pow(2, scale)), min_ns), max_ns) AS value_ns
    FROM shaped;

-- Samples at or below threshold_ns in one histogram row, from its buckets: exact only when the threshold is
-- a bucket boundary (any power of two at scale >= 0); anything else raises rather than guess.
CREATE OR REPLACE MACRO leo_good_in_buckets(bucket_offset, bucket_counts, scale, threshold_ns) AS
    CASE WHEN log2(threshold_ns) * pow(2, scale) <> round(log2(threshold_ns) * pow(2, scale))
         THEN error('threshold ' || threshold_ns || ' ns is neither the counter threshold nor a bucket boundary')
         ELSE coalesce(list_sum(bucket_counts[1 : round(log2(threshold_ns) * pow(2, scale))::BIGINT - bucket_offset]), 0)
    END;

-- SLI = good / total per group at threshold_ns: the exact over_slo counters where the rows were counted at
-- that threshold, the buckets otherwise (models.histogram.good_events).
CREATE OR REPLACE MACRO leo_sli(rel, keys, threshold_ns) AS TABLE
    SELECT unnest(grp), total, good, good / total AS sli
    FROM (SELECT struct_pack(*COLUMNS(c -> list_contains(keys, c) OR c = 'scale')) AS grp,
                 sum(count)::UBIGINT AS total,
                 sum(CASE WHEN slo_threshold_ns = threshold_ns THEN count - over_slo
                          ELSE leo_good_in_buckets(bucket_offset, bucket_counts, scale, threshold_ns) END)::UBIGINT AS good
          FROM query_table(rel)
          GROUP BY ALL);
