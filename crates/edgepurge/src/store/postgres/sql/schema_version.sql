SELECT COALESCE(MAX(version), 0) FROM edgepurge_schema
