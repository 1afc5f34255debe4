-- When the first job held by a rule's min_interval_ms may go (`not_before > 0` matches the
-- partial index jobs_held).
SELECT MIN(not_before) FROM jobs
WHERE lane_id = $1 AND kind = $2 AND batch_id IS NULL AND not_before > 0 AND not_before > $3
