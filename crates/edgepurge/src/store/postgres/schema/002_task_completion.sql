-- edgepurge PostgreSQL store, schema version 2: the purge lifecycle (as SQLite's version 4).
-- batches.task_state: 'follow' while the provider's task is asked about, then 'done',
-- 'failed' or 'lost'; NULL when there is no task to follow. completed_at on batches and
-- records: when the purge (for a record: every purge of it) completed at the provider.

ALTER TABLE batches ADD COLUMN task_state text;
ALTER TABLE batches ADD COLUMN task_check_at bigint;
ALTER TABLE batches ADD COLUMN task_checks bigint NOT NULL DEFAULT 0;
ALTER TABLE batches ADD COLUMN task_error text;
ALTER TABLE batches ADD COLUMN completed_at bigint;
ALTER TABLE purges ADD COLUMN completed_at bigint;

UPDATE batches SET completed_at = finished_at WHERE state = 'succeeded';
UPDATE purges SET completed_at = updated_at WHERE status = 'succeeded';

CREATE INDEX batches_task_due ON batches (lane_id, task_check_at) WHERE task_state = 'follow';
