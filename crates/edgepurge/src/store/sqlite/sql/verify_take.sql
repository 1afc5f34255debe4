UPDATE purges SET verify_at = ?3
WHERE id = ?1 AND verify = 'pending' AND verify_at <= ?2
RETURNING id, format, event, bucket, key, event_id, etag, size, rule, provider, targets,
    status, completed_at, error, verify_round,
    warm IS NOT NULL
