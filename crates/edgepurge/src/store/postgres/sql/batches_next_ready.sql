SELECT MIN(not_before) FROM batches WHERE lane_id = $1 AND state = 'ready'
