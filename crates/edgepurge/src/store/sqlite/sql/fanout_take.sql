-- The account's oldest fan-out targets, one slice.
SELECT id, kind, target, created_at, purge_ids FROM fanout
WHERE account = ?1
ORDER BY id LIMIT ?2
