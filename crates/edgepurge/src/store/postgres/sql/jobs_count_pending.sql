SELECT COUNT(*) FROM (
    SELECT 1 FROM jobs
    WHERE lane_id = $1 AND kind = $2 AND batch_id IS NULL
    LIMIT $3) t
