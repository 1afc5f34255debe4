DELETE FROM fanout WHERE id = ?1
