SELECT job_ids FROM purges WHERE id = ?1
