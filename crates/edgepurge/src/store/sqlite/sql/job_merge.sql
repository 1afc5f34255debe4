UPDATE jobs SET
    purge_ids = json_insert(purge_ids, '$[#]', ?2),
    solo_ids = CASE WHEN ?3 THEN json_insert(solo_ids, '$[#]', ?2) ELSE solo_ids END,
    not_before = MAX(not_before, ?4),
    min_interval_ms = MAX(min_interval_ms, ?5),
    allow_host = allow_host AND ?6
WHERE id = ?1
RETURNING not_before
