SELECT id, job_ids FROM batches
WHERE finished_at < $1 AND state IN ('succeeded', 'dead')
    -- A purge whose provider task is still followed stays until it is settled.
    AND (task_state IS NULL OR task_state <> 'follow')
ORDER BY finished_at LIMIT $2
FOR UPDATE SKIP LOCKED
