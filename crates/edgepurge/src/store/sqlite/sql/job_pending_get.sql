SELECT created_at, purge_ids, solo_ids FROM jobs
WHERE id = ?1 AND lane_id = ?2 AND batch_id IS NULL
