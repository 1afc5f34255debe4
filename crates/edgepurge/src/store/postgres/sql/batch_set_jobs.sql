UPDATE batches SET n_jobs = $2, job_ids = $3, purge_ids = $4, solo_ids = $5 WHERE id = $1
