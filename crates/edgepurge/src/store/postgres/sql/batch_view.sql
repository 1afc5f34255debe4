SELECT status, attempts, request_id, task_id, last_error, completed_at, task_error
FROM batches WHERE id = $1
