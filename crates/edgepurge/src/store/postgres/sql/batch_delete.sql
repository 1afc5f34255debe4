DELETE FROM batches WHERE id = $1
