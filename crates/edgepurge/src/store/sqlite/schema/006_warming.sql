-- edgepurge store, schema version 6: warming (prefetching) purged URLs into the CDN after the
-- purge completed (rules with `warm = true`).
--
-- * purges.warm: NULL (not asked), 'pending' (prefetched once the purge completed and, when
--   the rule verifies, was verified), then 'warmed', 'failed' or 'skipped'; warm_note says
--   what happened or why not; warm_task keeps the provider's prefetch task id(s).
-- * purges.warm_at: when a pending warming may be taken (a taker pushes it ahead by its
--   lease, so another process does not take it meanwhile).

ALTER TABLE purges ADD COLUMN warm TEXT;
ALTER TABLE purges ADD COLUMN warm_note TEXT;
ALTER TABLE purges ADD COLUMN warm_task TEXT;
ALTER TABLE purges ADD COLUMN warm_at INTEGER;

CREATE INDEX purges_warm_due ON purges (provider, warm_at) WHERE warm = 'pending';
