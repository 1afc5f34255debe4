INSERT INTO jobs (id, lane_id, kind, target, created_at, purge_ids, solo_ids, not_before,
    min_interval_ms, allow_host)
VALUES (?1, ?2, ?3, ?4, ?5, json_array(?6), CASE WHEN ?7 THEN json_array(?6) ELSE '[]' END,
    ?8, ?9, ?10)
