SELECT created_at FROM jobs
WHERE lane_id = $1 AND kind = $2 AND batch_id IS NULL
ORDER BY id LIMIT 1
