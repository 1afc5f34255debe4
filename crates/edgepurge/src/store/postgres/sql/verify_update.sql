UPDATE purges SET verify = $2, verify_note = $3, verify_at = NULL, updated_at = $4,
    xid = pg_current_xact_id()
WHERE id = $1 AND verify = 'pending'
RETURNING id, status, completed_at, error
