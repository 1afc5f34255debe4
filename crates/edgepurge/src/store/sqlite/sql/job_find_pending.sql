SELECT id FROM jobs
WHERE lane_id = ?1 AND kind = ?2 AND target = ?3 AND batch_id IS NULL
