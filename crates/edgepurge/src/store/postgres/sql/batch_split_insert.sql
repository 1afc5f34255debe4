INSERT INTO batches (lane_id, kind, state, status, attempts, n_jobs, not_before,
    created_at, quota_day, last_error, job_ids, purge_ids, solo_ids)
SELECT lane_id, kind, 'ready', 'queued', attempts, $2, $3, created_at, quota_day, $4, $5, $6, $7
FROM batches WHERE id = $1
RETURNING id
