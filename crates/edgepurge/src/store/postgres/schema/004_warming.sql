-- edgepurge PostgreSQL store, schema version 4: warming (prefetching) purged URLs into the
-- CDN after the purge (as SQLite's version 6). purges.warm: NULL (not asked), 'pending'
-- (prefetched once the purge completed and, when the rule verifies, was verified), then
-- 'warmed', 'failed' or 'skipped', with warm_note saying what happened or why not and
-- warm_task the provider's prefetch task id(s); warm_at: when a pending warming may be taken
-- (a taker pushes it ahead by its lease).

ALTER TABLE purges ADD COLUMN warm text;
ALTER TABLE purges ADD COLUMN warm_note text;
ALTER TABLE purges ADD COLUMN warm_task text;
ALTER TABLE purges ADD COLUMN warm_at bigint;

CREATE INDEX purges_warm_due ON purges (provider, warm_at) WHERE warm = 'pending';
