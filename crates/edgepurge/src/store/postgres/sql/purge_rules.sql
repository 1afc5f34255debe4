SELECT 1 FROM purges WHERE id = ANY($1) AND rule = $2 LIMIT 1
