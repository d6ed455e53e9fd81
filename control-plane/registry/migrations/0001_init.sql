-- One schema for both SQLite and PostgreSQL, so only portable SQL is used: TEXT and BIGINT
-- columns, no AUTOINCREMENT/SERIAL, JSON and RFC 3339 UTC timestamps stored as TEXT.
-- Column names avoid words that are keywords in either dialect (view, rows, key, value).

-- The current definitions; a deleted object has no row here, only a tombstone in history.
CREATE TABLE objects (
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    version BIGINT NOT NULL,
    spec TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (kind, name)
);

-- Every version ever applied. spec is NULL for the tombstone written when an object is
-- deleted, so a name's history stays one unbroken line of versions even if it is re-created.
CREATE TABLE object_versions (
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    version BIGINT NOT NULL,
    spec TEXT,
    author TEXT NOT NULL,
    message TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (kind, name, version)
);

-- Named monotonic counters, advanced with a single upsert so concurrent callers never share
-- a value.
CREATE TABLE counters (
    name TEXT NOT NULL PRIMARY KEY,
    current_value BIGINT NOT NULL
);

CREATE TABLE snapshots (
    view_name TEXT NOT NULL,
    version BIGINT NOT NULL,
    object_key TEXT NOT NULL,
    row_count BIGINT NOT NULL,
    size_bytes BIGINT NOT NULL,
    checksum TEXT NOT NULL,
    manifest_seq BIGINT NOT NULL,
    created_at TEXT NOT NULL,
    duration_ms BIGINT NOT NULL,
    PRIMARY KEY (view_name, version)
);

-- A single row every apply updates first. On PostgreSQL the row lock serialises concurrent
-- applies (the second one then reads the first one's result); on SQLite the write makes the
-- transaction take the write lock before it reads anything, so it waits on the busy timeout
-- instead of failing with SQLITE_BUSY when it later tries to upgrade a read transaction.
CREATE TABLE apply_lock (
    id BIGINT NOT NULL PRIMARY KEY,
    generation BIGINT NOT NULL
);
INSERT INTO apply_lock (id, generation) VALUES (1, 0);
