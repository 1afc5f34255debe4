INSERT INTO purges (id, created_at, updated_at, seq, rule, provider, format, event,
    bucket, key, event_id, targets, job_ids, status, error, etag, size, verify, verify_note,
    verify_at, verify_round, warm, warm_note, warm_at, note)
VALUES (?1, ?2, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,
    CASE WHEN ?17 IS NULL THEN NULL ELSE ?2 END, ?19, ?20, ?21,
    CASE WHEN ?20 IS NULL THEN NULL ELSE ?2 END, ?22)
