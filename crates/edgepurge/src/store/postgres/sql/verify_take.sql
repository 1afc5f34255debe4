UPDATE purges SET verify_at = $5
WHERE id IN (
    SELECT id FROM purges
    WHERE verify = 'pending' AND provider = $1 AND verify_at <= $2
        AND (completed_at <= $3 OR status = 'dead'
             OR (status = 'succeeded' AND completed_at IS NULL AND error IS NOT NULL))
    ORDER BY verify_at, id
    LIMIT $4
    FOR UPDATE SKIP LOCKED)
RETURNING id, format, event, bucket, key, event_id, etag, size, rule, provider, targets,
    status, completed_at, error, verify_round,
    warm IS NOT NULL
