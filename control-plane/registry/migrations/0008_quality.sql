-- Feature quality (portable SQL: TEXT and BIGINT only).
--
-- quality_reports: one per evaluated snapshot, published or not: per-feature statistics, the
-- result of every declared check and the drift figures, as JSON the registry does not read.
CREATE TABLE quality_reports (
    view_name TEXT NOT NULL,
    snapshot_version BIGINT NOT NULL,
    run_id BIGINT,
    published BIGINT NOT NULL,
    created_at TEXT NOT NULL,
    report TEXT NOT NULL,
    PRIMARY KEY (view_name, snapshot_version)
);

-- quality_distributions: the value distributions drift is measured from, per view, under a
-- key such as `snapshot:42` or `training_set:<path>`; kept here so that a baseline outlives
-- the retention of its snapshot.
CREATE TABLE quality_distributions (
    view_name TEXT NOT NULL,
    dist_key TEXT NOT NULL,
    created_at TEXT NOT NULL,
    distributions TEXT NOT NULL,
    PRIMARY KEY (view_name, dist_key)
);

-- alerts: one row per problem episode. At most one open alert per fingerprint (the problem's
-- identity), enforced by the database, so replicas raising the same problem at once make one.
CREATE TABLE alerts (
    id BIGINT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    alert_kind TEXT NOT NULL,
    view_name TEXT,
    severity TEXT NOT NULL,
    alert_status TEXT NOT NULL,
    summary TEXT NOT NULL,
    details TEXT NOT NULL,
    opened_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    resolved_at TEXT,
    occurrences BIGINT NOT NULL,
    deliveries TEXT NOT NULL
);
CREATE UNIQUE INDEX alerts_one_open ON alerts (fingerprint) WHERE alert_status = 'open';
CREATE INDEX alerts_by_view ON alerts (view_name, id);

-- serving_samples: what edges reported serving per view over one heartbeat interval.
CREATE TABLE serving_samples (
    edge_id TEXT NOT NULL,
    view_name TEXT NOT NULL,
    sampled_at TEXT NOT NULL,
    window_ms BIGINT NOT NULL,
    lookups BIGINT NOT NULL,
    not_found BIGINT NOT NULL,
    errors BIGINT NOT NULL,
    p50_us BIGINT,
    p99_us BIGINT
);
CREATE INDEX serving_samples_by_view ON serving_samples (view_name, sampled_at);
CREATE INDEX serving_samples_by_time ON serving_samples (sampled_at);
