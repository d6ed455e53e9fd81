-- Materialization job runs, shared by every control-plane replica using this database. Portable
-- SQL only, as in 0001: TEXT and BIGINT, RFC 3339 UTC timestamps with microseconds written by
-- the registry (fixed width, so they compare chronologically as text), no keywords of either
-- dialect as column names (hence run_status, run_trigger, run_owner, run_error).
--
-- id comes from the `job_run` counter. A run is `queued`, then `running` under a lease held by
-- one replica (run_owner, lease_until), then `succeeded`, `failed` or `cancelled`; a queued run
-- may also be cancelled directly. cancel_requested is 0 or 1; cancel_actor is who asked, kept
-- so that the runner's "cancelled" outcome can say so.
CREATE TABLE job_runs (
    id BIGINT NOT NULL PRIMARY KEY,
    view_name TEXT NOT NULL,
    run_status TEXT NOT NULL,
    run_trigger TEXT NOT NULL,
    attempt BIGINT NOT NULL,
    scheduled_for TEXT,
    actor TEXT NOT NULL,
    requested_at TEXT NOT NULL,
    not_before TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    run_owner TEXT,
    lease_until TEXT,
    cancel_requested BIGINT NOT NULL DEFAULT 0,
    cancel_actor TEXT,
    rows_read BIGINT,
    rows_written BIGINT,
    rows_rejected BIGINT,
    snapshot_version BIGINT,
    manifest_seq BIGINT,
    run_error TEXT
);

-- At most one queued or running run per view, enforced by the database so that replicas
-- racing to queue the same view cannot both succeed (overlapping runs would publish over each
-- other).
CREATE UNIQUE INDEX job_runs_one_active ON job_runs (view_name)
    WHERE run_status IN ('queued', 'running');

-- One run per schedule slot of a view, whatever became of it: every replica's scheduler sees
-- the same slot, and only the first to queue it wins. Unscheduled runs have a NULL slot, and
-- NULLs are distinct in both databases, so they never collide here.
CREATE UNIQUE INDEX job_runs_slot ON job_runs (view_name, scheduled_for);

-- Claiming takes the oldest queued run, and lease expiry scans running runs.
CREATE INDEX job_runs_by_status ON job_runs (run_status, id);

-- The runs of one view, newest first (history pages, last_run).
CREATE INDEX job_runs_by_view ON job_runs (view_name, id);
