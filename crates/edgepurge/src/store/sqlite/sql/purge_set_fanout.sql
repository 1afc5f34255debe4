UPDATE purges SET fanout_left = ?2 WHERE id = ?1
