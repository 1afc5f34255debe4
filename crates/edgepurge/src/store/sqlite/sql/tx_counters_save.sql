UPDATE meta SET v = CASE k WHEN 'purge_id' THEN ?1 WHEN 'job_id' THEN ?2 ELSE ?3 END
WHERE k IN ('purge_id', 'job_id', 'created_at')
