SELECT l.name, b.state, COUNT(*)
FROM batches b JOIN lanes l ON l.id = b.lane_id
WHERE b.state IN ('ready', 'inflight', 'dead')
GROUP BY l.name, b.state
