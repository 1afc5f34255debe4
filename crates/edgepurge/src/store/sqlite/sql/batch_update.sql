UPDATE batches SET
    state = ?2,
    status = ?3,
    token = CASE WHEN ?2 = 'inflight' THEN token ELSE NULL END,
    not_before = COALESCE(?4, not_before),
    finished_at = CASE WHEN ?2 IN ('ready', 'inflight') THEN NULL ELSE COALESCE(?5, finished_at) END,
    attempts = COALESCE(?6, attempts),
    created_at = COALESCE(?7, created_at),
    quota_day = CASE WHEN ?8 THEN NULL ELSE quota_day END,
    request_id = CASE WHEN ?9 THEN ?10 ELSE request_id END,
    task_id = CASE WHEN ?11 THEN ?12 ELSE task_id END,
    last_error = ?13,
    completed_at = ?14,
    task_state = CASE WHEN ?15 IS NULL THEN NULL ELSE 'follow' END,
    task_check_at = ?15,
    task_checks = 0,
    task_error = NULL
WHERE id = ?1
