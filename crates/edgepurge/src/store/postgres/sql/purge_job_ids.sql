-- Locked (in id order) before their jobs' batches are read: two lanes finishing batches of
-- one record at once then see each other's answer; else each could write the status it saw
-- with the other's batch still in flight, and the record would stay `sent`.
SELECT id, job_ids, fanout_left FROM purges WHERE id = ANY($1) ORDER BY id FOR UPDATE
