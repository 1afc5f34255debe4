DELETE FROM requests WHERE id IN (
    SELECT id FROM requests WHERE started_at < $1 ORDER BY id LIMIT $2)
