-- Named locks with a lease, held across processes sharing the registry (publishing a manifest
-- is one: two replicas building from the same live manifest would undo each other's views).
CREATE TABLE locks (
    lock_name TEXT NOT NULL PRIMARY KEY,
    holder TEXT NOT NULL,
    lease_until TEXT NOT NULL
);
