-- Pending jobs for a group of records, one row per distinct (lane, kind, target), in that
-- order (so concurrent groups lock rows in one order): new ones are inserted, existing
-- pending ones take the records too. A job already in a batch is not pending, so a target
-- never merges into a request already sent. A job held by a rule's min_interval_ms keeps
-- the later not_before, and the longest interval; it allows a host purge only if all its
-- records do.
INSERT INTO jobs (lane_id, kind, target, created_at, purge_ids, solo_ids, not_before,
    min_interval_ms, allow_host)
SELECT u.lane_id, u.kind, u.target, u.created_at, u.purge_ids::bigint[], u.solo_ids::bigint[],
    u.not_before, u.min_interval_ms, u.allow_host
FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[],
    $7::bigint[], $8::bigint[], $9::boolean[])
    WITH ORDINALITY AS u(lane_id, kind, target, created_at, purge_ids, solo_ids, not_before,
        min_interval_ms, allow_host, n)
ORDER BY u.n
ON CONFLICT (lane_id, kind, target) WHERE batch_id IS NULL
DO UPDATE SET purge_ids = jobs.purge_ids || EXCLUDED.purge_ids,
    solo_ids = jobs.solo_ids || EXCLUDED.solo_ids,
    not_before = GREATEST(jobs.not_before, EXCLUDED.not_before),
    min_interval_ms = GREATEST(jobs.min_interval_ms, EXCLUDED.min_interval_ms),
    allow_host = jobs.allow_host AND EXCLUDED.allow_host
RETURNING id, (xmax = 0) AS inserted, lane_id, kind, target, not_before
