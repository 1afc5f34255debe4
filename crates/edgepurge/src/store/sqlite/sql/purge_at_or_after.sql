SELECT id, created_at FROM purges WHERE id >= ?1 ORDER BY id LIMIT 1
