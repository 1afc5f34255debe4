-- Jobs of a record's expanded fan-out rows join its jobs; ?3 of its rows are done.
UPDATE purges SET job_ids = ?2, fanout_left = fanout_left - ?3 WHERE id = ?1
