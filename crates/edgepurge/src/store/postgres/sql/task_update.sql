UPDATE batches SET
    task_state = $2,
    task_check_at = $3,
    task_checks = task_checks + 1,
    task_error = $4,
    completed_at = $5
WHERE id = $1 AND task_state = 'follow'
