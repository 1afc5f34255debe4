UPDATE jobs SET
    purge_ids = json_insert(purge_ids, '$[#]', ?2),
    solo_ids = CASE WHEN ?3 THEN json_insert(solo_ids, '$[#]', ?2) ELSE solo_ids END
WHERE id = ?1
