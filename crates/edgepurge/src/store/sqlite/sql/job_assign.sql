UPDATE jobs SET batch_id = ?2 WHERE id = ?1
