SELECT id, task_id, finished_at, task_checks FROM batches
WHERE lane_id = ?1 AND task_state = 'follow' AND task_check_at <= ?2
ORDER BY task_check_at, id
LIMIT ?3
