-- serving_rollup: serving samples summed per edge, view and bucket of time as they arrive, so a
-- chart of the last hour reads one row per edge, view and minute instead of every heartbeat's
-- report (an hour of 5-second heartbeats from 10 edges serving 100 views is 720,000 samples).
-- step_seconds is 10 or 60; bucket is the prefix of the samples' RFC 3339 stamps that names the
-- bucket (`2026-12-04T10:01:2` for ten seconds, `2026-12-04T10:01` for a minute). Percentiles
-- are the worst reported in the bucket.
CREATE TABLE serving_rollup (
    step_seconds BIGINT NOT NULL,
    bucket TEXT NOT NULL,
    edge_id TEXT NOT NULL,
    view_name TEXT NOT NULL,
    reports BIGINT NOT NULL,
    window_ms BIGINT NOT NULL,
    lookups BIGINT NOT NULL,
    not_found BIGINT NOT NULL,
    errors BIGINT NOT NULL,
    p50_us BIGINT,
    p99_us BIGINT,
    PRIMARY KEY (step_seconds, bucket, edge_id, view_name)
);

-- The samples already kept (at most the last hour), summed once.
INSERT INTO serving_rollup (step_seconds, bucket, edge_id, view_name, reports, window_ms, lookups,
    not_found, errors, p50_us, p99_us)
SELECT 10, substr(sampled_at, 1, 18), edge_id, view_name, COUNT(*), SUM(window_ms), SUM(lookups),
    SUM(not_found), SUM(errors), MAX(p50_us), MAX(p99_us)
FROM serving_samples GROUP BY substr(sampled_at, 1, 18), edge_id, view_name;
INSERT INTO serving_rollup (step_seconds, bucket, edge_id, view_name, reports, window_ms, lookups,
    not_found, errors, p50_us, p99_us)
SELECT 60, substr(sampled_at, 1, 16), edge_id, view_name, COUNT(*), SUM(window_ms), SUM(lookups),
    SUM(not_found), SUM(errors), MAX(p50_us), MAX(p99_us)
FROM serving_samples GROUP BY substr(sampled_at, 1, 16), edge_id, view_name;
