-- The account's oldest fan-out targets, one slice; rows another node is expanding (or an
-- ingest is merging into) are left for the next slice rather than waited for.
SELECT id, kind, target, created_at, purge_ids FROM fanout
WHERE account = $1
ORDER BY id LIMIT $2
FOR UPDATE SKIP LOCKED
