INSERT INTO batches (lane_id, kind, state, status, attempts, n_jobs, not_before,
    created_at, quota_day, job_ids, purge_ids, solo_ids)
VALUES ($1, $2, 'ready', 'queued', 0, $3, $4, $5, $6, $7, $8, $9)
RETURNING id
