SELECT b.id, b.task_id, b.finished_at, b.task_checks FROM batches b
JOIN lanes l ON l.id = b.lane_id
WHERE l.name = $1 AND b.task_state = 'follow' AND b.task_check_at <= $2
ORDER BY b.task_check_at, b.id
LIMIT $3
