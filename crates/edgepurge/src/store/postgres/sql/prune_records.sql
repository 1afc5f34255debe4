DELETE FROM purges WHERE id IN (
    SELECT p.id FROM purges p
    WHERE p.created_at < $1 AND p.status IN ('skipped', 'succeeded', 'dead')
      AND p.fanout_left = 0
      AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = ANY(p.job_ids))
    ORDER BY p.created_at, p.id LIMIT $2
    FOR UPDATE SKIP LOCKED)
