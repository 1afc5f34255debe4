UPDATE purges SET status = ?2, attempts = ?3, request_id = ?4, task_id = ?5,
    error = ?6, updated_at = ?7, seq = ?8, completed_at = ?9
WHERE id = ?1
