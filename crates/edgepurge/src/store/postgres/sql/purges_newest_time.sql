SELECT COALESCE(MAX(created_at), 0) FROM purges
