SELECT id, seq, created_at, updated_at, rule, provider, format, event, bucket, key,
    event_id, targets, status, attempts, request_id, task_id, error, completed_at, etag, size,
    verify, verify_note, warm, warm_note, warm_task, note
FROM purges
