SELECT b.id, b.purge_ids, b.last_error FROM batches b
WHERE b.state = 'dead' AND ($1::bigint IS NULL OR b.lane_id = $1::bigint)
ORDER BY b.id
FOR UPDATE
