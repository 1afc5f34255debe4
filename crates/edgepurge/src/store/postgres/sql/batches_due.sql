SELECT id, kind, n_jobs, quota_day FROM batches
WHERE lane_id = $1 AND state = 'ready' AND not_before <= $2
ORDER BY not_before, id
