INSERT INTO listings (source, key, etag, size, modified)
SELECT $1, u.key, u.etag, u.size, u.modified
FROM unnest($2::text[], $3::text[], $4::bigint[], $5::text[]) AS u(key, etag, size, modified)
ON CONFLICT (source, key) DO UPDATE SET etag = EXCLUDED.etag, size = EXCLUDED.size,
    modified = EXCLUDED.modified
