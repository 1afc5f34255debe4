SELECT job_ids, fanout_left FROM purges WHERE id = ?1
