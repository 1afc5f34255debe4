-- Delivered at commit; one per lane (payload: instance, jobs, lane).
SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p
