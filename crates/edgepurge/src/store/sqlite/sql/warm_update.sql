UPDATE purges SET warm = ?2, warm_note = ?3, warm_task = ?4, warm_at = NULL, updated_at = ?5,
    seq = ?6
WHERE id = ?1 AND warm = 'pending'
RETURNING id, status, completed_at, error
