SELECT id FROM batches WHERE lane_id = $1 AND state = 'inflight' ORDER BY id
FOR UPDATE
