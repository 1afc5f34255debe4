SELECT id FROM purges
WHERE rule = $1 AND id > $2 AND provider = $3 AND bucket = $4 AND key = $5 AND verify_round = 0
ORDER BY id DESC
LIMIT 1
