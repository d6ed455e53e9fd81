-- What a run did beyond its row counts (portable SQL, one column per statement: SQLite adds
-- one column per ALTER TABLE). run_mode is `full`, `delta`, `compacted` or `unchanged` (an
-- incremental run that found nothing new and published nothing); entities is the number of
-- entities in the snapshot it wrote; quarantine is the object key of the file listing the
-- source rows it rejected, with the file, row and reason of each.
ALTER TABLE job_runs ADD COLUMN run_mode TEXT;
ALTER TABLE job_runs ADD COLUMN entities BIGINT;
ALTER TABLE job_runs ADD COLUMN quarantine TEXT;
