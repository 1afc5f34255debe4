UPDATE purges SET warm_at = ?3
WHERE id = ?1 AND warm = 'pending' AND warm_at <= ?2
RETURNING id, event, provider, targets, status, completed_at, error, verify
