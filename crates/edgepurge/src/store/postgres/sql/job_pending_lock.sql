-- URL jobs to collapse into a directory job (collapse_to_dir_over); one an ingest is
-- merging into right now is left as it is.
SELECT id, created_at, purge_ids, solo_ids FROM jobs
WHERE id = ANY($1) AND lane_id = $2 AND batch_id IS NULL
ORDER BY id
FOR UPDATE SKIP LOCKED
