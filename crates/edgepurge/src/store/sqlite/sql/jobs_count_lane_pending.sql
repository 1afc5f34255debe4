-- A lane's pending jobs of any kind, counted up to ?2 (a long backlog costs no scan).
SELECT COUNT(*) FROM (
    SELECT 1 FROM jobs WHERE lane_id = ?1 AND batch_id IS NULL LIMIT ?2) t
