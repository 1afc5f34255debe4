SELECT id, job_ids FROM batches
WHERE finished_at < $1 AND state IN ('succeeded', 'dead')
ORDER BY finished_at LIMIT $2
FOR UPDATE SKIP LOCKED
