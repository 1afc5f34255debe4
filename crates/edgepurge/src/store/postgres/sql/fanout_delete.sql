DELETE FROM fanout WHERE id = ANY($1)
