-- Fan-out targets of a group of records, one row per distinct (account, kind, target), in
-- that order (concurrent groups lock rows in one order): new ones are inserted, rows not yet
-- expanded take the records too. A row being expanded is locked by its expander; once that
-- commits, the row is gone and the target is queued anew.
INSERT INTO fanout (account, kind, target, created_at, purge_ids)
SELECT u.account, u.kind, u.target, u.created_at, u.purge_ids::bigint[]
FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[])
    WITH ORDINALITY AS u(account, kind, target, created_at, purge_ids, n)
ORDER BY u.n
ON CONFLICT (account, kind, target)
DO UPDATE SET purge_ids = fanout.purge_ids || EXCLUDED.purge_ids
RETURNING account, kind, target, (xmax = 0) AS inserted
