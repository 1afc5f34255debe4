SELECT l.name, COUNT(*), MIN(j.created_at)
FROM jobs j JOIN lanes l ON l.id = j.lane_id
WHERE j.batch_id IS NULL
GROUP BY l.name
