-- Oldest first; a job another transaction holds (an ingest merging into it) is left for
-- the next batch rather than waited for.
SELECT id, target, created_at, purge_ids, solo_ids FROM jobs
WHERE lane_id = $1 AND kind = $2 AND batch_id IS NULL
ORDER BY id LIMIT $3
FOR UPDATE SKIP LOCKED
