UPDATE purges SET warm_at = $5
WHERE id IN (
    SELECT id FROM purges
    WHERE warm = 'pending' AND provider = $1 AND warm_at <= $2
        AND (verify IS NULL OR verify <> 'pending')
        AND (completed_at <= $3 OR status = 'dead'
             OR (status = 'succeeded' AND completed_at IS NULL AND error IS NOT NULL))
    ORDER BY warm_at, id
    LIMIT $4
    FOR UPDATE SKIP LOCKED)
RETURNING id, event, provider, targets, status, completed_at, error, verify
