-- edgepurge store, schema version 5: verifying that the CDN serves the new object after a
-- purge (rules with `verify = true`).
--
-- * purges.etag, purges.size: the object's ETag and size as the event gave them.
-- * purges.verify: NULL (not asked), 'pending' (checked once the purge completed), then
--   'fresh', 'stale' or 'unverifiable'; verify_note says what was seen or why not.
-- * purges.verify_at: when a pending verification may be taken (a taker pushes it ahead by
--   its lease, so another process does not take it meanwhile).
-- * purges.verify_round: re-purges before this record (a stale record is purged once more as
--   a new record of the next round).

ALTER TABLE purges ADD COLUMN etag TEXT;
ALTER TABLE purges ADD COLUMN size INTEGER;
ALTER TABLE purges ADD COLUMN verify TEXT;
ALTER TABLE purges ADD COLUMN verify_note TEXT;
ALTER TABLE purges ADD COLUMN verify_at INTEGER;
ALTER TABLE purges ADD COLUMN verify_round INTEGER NOT NULL DEFAULT 0;

CREATE INDEX purges_verify_due ON purges (provider, verify_at) WHERE verify = 'pending';
