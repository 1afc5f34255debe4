UPDATE jobs SET batch_id = ?1 WHERE id IN (SELECT value FROM json_each(?2))
