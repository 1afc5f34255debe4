UPDATE batches SET state = 'inflight', status = 'sent', token = $2,
    attempts = attempts + 1, first_sent_at = COALESCE(first_sent_at, $3), last_sent_at = $3
WHERE id = $1
RETURNING kind, attempts, created_at, job_ids, purge_ids, solo_ids, request_id, task_id,
    last_error
