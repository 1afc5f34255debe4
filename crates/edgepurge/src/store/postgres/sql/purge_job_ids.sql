SELECT id, job_ids, fanout_left FROM purges WHERE id = ANY($1)
