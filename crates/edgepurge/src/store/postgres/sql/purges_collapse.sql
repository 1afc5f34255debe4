-- Records whose URL jobs ($2) went into directory job $3: they wait for it, and say so.
UPDATE purges SET
    job_ids = ARRAY(SELECT DISTINCT CASE WHEN j = ANY($2) THEN $3 ELSE j END
                    FROM unnest(job_ids) AS j ORDER BY 1),
    note = $4, updated_at = $5, xid = pg_current_xact_id()
WHERE id = ANY($1)
