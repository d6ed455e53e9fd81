-- Access control and the audit log (portable SQL: TEXT and BIGINT only).
--
-- access_tokens: API tokens. Only the SHA-256 of a token's secret is kept; the token itself is
-- shown once when created. A name is unique among the tokens not revoked.
CREATE TABLE access_tokens (
    id TEXT PRIMARY KEY,
    token_name TEXT NOT NULL,
    role_name TEXT NOT NULL,
    secret_sha256 TEXT NOT NULL,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    expires_at TEXT,
    revoked_at TEXT,
    revoked_by TEXT
);
CREATE UNIQUE INDEX access_tokens_active_name ON access_tokens (token_name)
    WHERE revoked_at IS NULL;

-- access_roles: custom roles (the built-in ones live in code); permissions as JSON.
CREATE TABLE access_roles (
    role_name TEXT PRIMARY KEY,
    description TEXT NOT NULL,
    permissions TEXT NOT NULL,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL
);

-- settings: values made once per registry, such as the key the access document is signed with.
CREATE TABLE settings (
    setting_name TEXT PRIMARY KEY,
    setting_value TEXT NOT NULL
);

-- audit_log: append-only and hash-chained: each record's hash covers its fields and the hash
-- before it, so changing or removing a record breaks every hash after it. Records shipped by
-- an edge carry the edge's own sequence number, so a batch sent twice is recorded once.
CREATE TABLE audit_log (
    seq BIGINT PRIMARY KEY,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    resource TEXT NOT NULL,
    detail TEXT NOT NULL,
    origin TEXT NOT NULL,
    remote TEXT,
    origin_seq BIGINT,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE UNIQUE INDEX audit_log_origin_seq ON audit_log (origin, origin_seq);
CREATE INDEX audit_log_at ON audit_log (at);

-- audit_head: the chain's last record. Appenders update it first, which serializes them on
-- both databases, and `audit verify` checks that the chain ends where the head says.
CREATE TABLE audit_head (
    id BIGINT PRIMARY KEY,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES
    (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
