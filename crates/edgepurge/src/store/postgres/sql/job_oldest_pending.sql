-- Jobs held by a rule's min_interval_ms (not_before after $3) wait.
SELECT created_at FROM jobs
WHERE lane_id = $1 AND kind = $2 AND batch_id IS NULL AND not_before <= $3
ORDER BY id LIMIT 1
