-- The catalog: snapshot lineage, the search documents, the change log and per-service
-- rollbacks. Portable SQL only, as in 0001 (TEXT and BIGINT, JSON as TEXT, no keywords of
-- either dialect as column names). The full-text index over catalog.body differs between the
-- two databases, so it is created by the registry when it opens, not here.

-- Which definition version a snapshot was materialized from, and what it was built from
-- (input files with size and etag, rows, transform digests): JSON the registry stores but
-- does not read. Rows recorded before this migration get 0 and an empty object.
ALTER TABLE snapshots ADD COLUMN definition_version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE snapshots ADD COLUMN lineage TEXT NOT NULL DEFAULT '{}';

-- One row per searchable document (a feature, or a definition), derived from the current
-- definitions and rebuilt inside every apply transaction, so it can never disagree with them.
-- tags and entities are written `|a|b|` so that one value can be matched exactly as the
-- substring `|a|`. body holds the document's search tokens, space-separated, each [a-z0-9]+,
-- so both databases' full-text parsers see exactly the tokens the registry produced.
CREATE TABLE catalog (
    doc_id TEXT NOT NULL PRIMARY KEY,
    doc_kind TEXT NOT NULL,
    name TEXT NOT NULL,
    view_name TEXT,
    owner TEXT NOT NULL,
    tags TEXT NOT NULL,
    entities TEXT NOT NULL,
    feature_type TEXT,
    description TEXT NOT NULL,
    body TEXT NOT NULL,
    doc TEXT NOT NULL
);

-- Every registry mutation: applies (one row per object changed), publishes, rollbacks.
-- seq comes from the `changelog` counter, allocated in the writing transaction.
CREATE TABLE changelog (
    seq BIGINT NOT NULL PRIMARY KEY,
    created_at TEXT NOT NULL,
    actor TEXT NOT NULL,
    change_action TEXT NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    version BIGINT,
    message TEXT NOT NULL,
    details TEXT NOT NULL
);

-- Snapshot overrides per feature service: the service reads snapshot `snapshot_version` of
-- `view_ref` (the view as the service names it, possibly pinned: `customer_rfm@v3`) instead
-- of the live one.
CREATE TABLE service_rollbacks (
    service TEXT NOT NULL,
    view_ref TEXT NOT NULL,
    snapshot_version BIGINT NOT NULL,
    author TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (service, view_ref)
);
