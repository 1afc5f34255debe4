-- edgepurge store, schema version 4: the purge lifecycle. A purge is complete when its
-- provider's task is done (Tencent DescribePurgeTasks, CloudFront GetInvalidation) or, for a
-- provider without tasks, when it answered.
--
-- * batches.task_state: 'follow' while the provider's task is asked about, then 'done',
--   'failed' or 'lost' (no answer worth waiting for); NULL when there is no task to follow.
-- * batches.completed_at, purges.completed_at: when the purge (for a record: every purge of
--   it) completed at the provider.

ALTER TABLE batches ADD COLUMN task_state TEXT;
ALTER TABLE batches ADD COLUMN task_check_at INTEGER;
ALTER TABLE batches ADD COLUMN task_checks INTEGER NOT NULL DEFAULT 0;
ALTER TABLE batches ADD COLUMN task_error TEXT;
ALTER TABLE batches ADD COLUMN completed_at INTEGER;
ALTER TABLE purges ADD COLUMN completed_at INTEGER;

-- Purges answered before this version are taken as complete when they were answered.
UPDATE batches SET completed_at = finished_at WHERE state = 'succeeded';
UPDATE purges SET completed_at = updated_at WHERE status = 'succeeded';

CREATE INDEX batches_task_due ON batches (lane_id, task_check_at) WHERE task_state = 'follow';
