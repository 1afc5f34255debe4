INSERT INTO listings (source, key, etag, size, modified) VALUES (?1, ?2, ?3, ?4, ?5)
ON CONFLICT (source, key) DO UPDATE SET etag = excluded.etag, size = excluded.size,
    modified = excluded.modified
