SELECT id, job_ids FROM purges WHERE id = ANY($1)
