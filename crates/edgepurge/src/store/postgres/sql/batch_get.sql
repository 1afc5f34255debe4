-- Locked: an answer and a takeover that resends the batch are decided one after the other.
SELECT l.name, b.kind, b.state, b.token, b.attempts, b.n_jobs, b.quota_day,
    b.job_ids, b.purge_ids, b.solo_ids
FROM batches b JOIN lanes l ON l.id = b.lane_id
WHERE b.id = $1
FOR UPDATE OF b
