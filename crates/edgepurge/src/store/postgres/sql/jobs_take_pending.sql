-- Oldest first; a job another transaction holds (an ingest merging into it) is left for
-- the next batch rather than waited for. Jobs held by a rule's min_interval_ms (not_before
-- after $4) wait.
SELECT id, target, created_at, purge_ids, solo_ids, min_interval_ms FROM jobs
WHERE lane_id = $1 AND kind = $2 AND batch_id IS NULL AND not_before <= $4
ORDER BY id LIMIT $3
FOR UPDATE SKIP LOCKED
