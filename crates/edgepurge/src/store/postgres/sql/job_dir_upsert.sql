-- The directory job that collapsed URL jobs go into: a pending one takes their records.
INSERT INTO jobs (lane_id, kind, target, created_at, purge_ids, solo_ids)
VALUES ($1, 'dir', $2, $3, $4, $5)
ON CONFLICT (lane_id, kind, target) WHERE batch_id IS NULL
DO UPDATE SET purge_ids = jobs.purge_ids || EXCLUDED.purge_ids,
    solo_ids = jobs.solo_ids || EXCLUDED.solo_ids
RETURNING id
