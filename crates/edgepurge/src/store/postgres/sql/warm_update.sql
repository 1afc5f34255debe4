UPDATE purges SET warm = $2, warm_note = $3, warm_task = $4, warm_at = NULL, updated_at = $5,
    xid = pg_current_xact_id()
WHERE id = $1 AND warm = 'pending'
RETURNING id, status, completed_at, error
