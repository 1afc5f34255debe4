-- The provider answers again: batches waiting after a failure are due now. Batches waiting
-- for quota keep status 'queued' and are left alone.
UPDATE batches SET not_before = $2
WHERE lane_id = $1 AND state = 'ready' AND status = 'failed' AND not_before > $2
