DELETE FROM purges WHERE id IN (
    SELECT p.id FROM purges p
    WHERE p.id < ?1 AND p.status IN ('skipped', 'succeeded', 'dead')
      AND p.fanout_left = 0
      AND NOT EXISTS (SELECT 1 FROM json_each(p.job_ids) je JOIN jobs j ON j.id = je.value)
    ORDER BY p.id LIMIT ?2)
