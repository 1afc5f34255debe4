-- The lease and the database's clock. Locked so that a claim and a takeover are decided one
-- after the other (`FOR UPDATE` when taking or renewing, `FOR SHARE` when claiming).
SELECT id, owner, lease_until, token,
    (extract(epoch FROM clock_timestamp()) * 1000)::bigint
FROM lanes WHERE name = $1
FOR SHARE
