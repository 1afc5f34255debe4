UPDATE purges SET status = $2, attempts = $3, request_id = $4, task_id = $5,
    error = $6, updated_at = $7, xid = pg_current_xact_id(), completed_at = $8
WHERE id = $1
