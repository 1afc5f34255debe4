INSERT INTO edgepurge_schema (version, applied_at) VALUES ($1, now())
