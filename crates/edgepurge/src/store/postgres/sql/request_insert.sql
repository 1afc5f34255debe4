INSERT INTO requests (batch_id, lane, kind, attempt, n_targets, started_at,
    finished_at, outcome, http_status, request_id, task_id, error)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
