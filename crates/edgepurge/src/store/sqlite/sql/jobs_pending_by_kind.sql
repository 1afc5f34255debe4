SELECT kind, COUNT(*), MIN(created_at) FROM jobs
WHERE lane_id = ?1 AND batch_id IS NULL GROUP BY kind
