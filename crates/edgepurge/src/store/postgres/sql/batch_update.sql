UPDATE batches SET
    state = $2::text,
    status = $3,
    token = CASE WHEN $2::text = 'inflight' THEN token ELSE NULL END,
    not_before = COALESCE($4::bigint, not_before),
    finished_at = CASE WHEN $2::text IN ('ready', 'inflight') THEN NULL
                       ELSE COALESCE($5::bigint, finished_at) END,
    attempts = COALESCE($6::bigint, attempts),
    created_at = COALESCE($7::bigint, created_at),
    quota_day = CASE WHEN $8::boolean THEN NULL ELSE quota_day END,
    request_id = CASE WHEN $9::boolean THEN $10::text ELSE request_id END,
    task_id = CASE WHEN $11::boolean THEN $12::text ELSE task_id END,
    last_error = $13,
    completed_at = $14::bigint,
    task_state = CASE WHEN $15::bigint IS NULL THEN NULL ELSE 'follow' END,
    task_check_at = $15::bigint,
    task_checks = 0,
    task_error = NULL
WHERE id = $1
