UPDATE jobs SET batch_id = $1 WHERE id = ANY($2)
