INSERT INTO purges (created_at, id, updated_at, xid, rule, provider, format, event, bucket,
    key, event_id, targets, job_ids, status, error, etag, size, verify, verify_note, verify_at,
    verify_round, warm, warm_note, warm_at, note)
SELECT u.created_at, u.id, u.created_at, pg_current_xact_id(), u.rule, u.provider, u.format,
    u.event, u.bucket, u.key, u.event_id, u.targets, u.job_ids::bigint[], u.status, u.error,
    u.etag, u.size, u.verify, u.verify_note,
    CASE WHEN u.verify IS NULL THEN NULL ELSE u.created_at END, u.verify_round,
    u.warm, u.warm_note, CASE WHEN u.warm IS NULL THEN NULL ELSE u.created_at END, u.note
FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[],
    $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[],
    $14::text[], $15::bigint[], $16::text[], $17::text[], $18::bigint[],
    $19::text[], $20::text[], $21::text[])
    AS u(created_at, id, rule, provider, format, event, bucket, key, event_id, targets,
         job_ids, status, error, etag, size, verify, verify_note, verify_round,
         warm, warm_note, note)
