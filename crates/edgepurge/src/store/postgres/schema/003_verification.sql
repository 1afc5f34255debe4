-- edgepurge PostgreSQL store, schema version 3: verifying that the CDN serves the new object
-- after a purge (as SQLite's version 5). purges.etag and purges.size: the object's ETag and
-- size as the event gave them. purges.verify: NULL (not asked), 'pending' (checked once the
-- purge completed), then 'fresh', 'stale' or 'unverifiable', with verify_note saying what was
-- seen or why not; verify_at: when a pending verification may be taken (a taker pushes it
-- ahead by its lease); verify_round: re-purges before this record.

ALTER TABLE purges ADD COLUMN etag text;
ALTER TABLE purges ADD COLUMN size bigint;
ALTER TABLE purges ADD COLUMN verify text;
ALTER TABLE purges ADD COLUMN verify_note text;
ALTER TABLE purges ADD COLUMN verify_at bigint;
ALTER TABLE purges ADD COLUMN verify_round bigint NOT NULL DEFAULT 0;

CREATE INDEX purges_verify_due ON purges (provider, verify_at) WHERE verify = 'pending';
