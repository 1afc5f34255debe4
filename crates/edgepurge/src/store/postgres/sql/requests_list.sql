SELECT id, batch_id, lane, kind, attempt, n_targets, started_at, finished_at,
    outcome, http_status, request_id, task_id, error
FROM requests
WHERE started_at >= $1 AND id < $3
ORDER BY id DESC LIMIT $2
