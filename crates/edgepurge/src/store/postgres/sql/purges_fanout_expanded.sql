-- Jobs of records' expanded fan-out rows join their jobs; `done` of their rows are done.
UPDATE purges p SET job_ids = COALESCE(p.job_ids, '{}') || u.jobs::bigint[],
    fanout_left = p.fanout_left - u.done
FROM unnest($1::bigint[], $2::text[], $3::bigint[]) AS u(id, jobs, done)
WHERE p.id = u.id
