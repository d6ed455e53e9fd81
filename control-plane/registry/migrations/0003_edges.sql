-- Edges report a heartbeat each poll interval; one row per edge id, replaced each time.
-- The control plane derives up/down from last_seen, so nothing here expires by itself.
CREATE TABLE edges (
    edge_id TEXT NOT NULL PRIMARY KEY,
    region TEXT NOT NULL,
    address TEXT NOT NULL,
    manifest_seq BIGINT,
    served_views TEXT NOT NULL,
    ready BIGINT NOT NULL,
    interval_ms BIGINT NOT NULL,
    started_at TEXT NOT NULL,
    first_seen TEXT NOT NULL,
    last_seen TEXT NOT NULL
);
