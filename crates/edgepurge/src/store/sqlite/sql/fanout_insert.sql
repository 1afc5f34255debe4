INSERT INTO fanout (account, kind, target, created_at, purge_ids)
VALUES (?1, ?2, ?3, ?4, json_array(?5))
