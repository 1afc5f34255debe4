SELECT rule FROM purges WHERE id = ?1
