-- edgepurge store, fan-out targets (issue: one request must not multiply queue rows by cache
-- nodes). A target of a provider account with several lanes (an http-purge account: one lane
-- per cache node) is stored once here at ingest, and expanded into one pending job per lane
-- in bounded slices, by a lane of the account when its own backlog is low (then deleted).
--
-- * fanout: one row per account, kind and pending target; a new target merges into it (no
--   lane has it yet, so nothing of it was sent).
-- * purges.fanout_left: fan-out rows of the record not yet expanded; the record is not
--   settled while any is left.
--
-- Jobs queued before this version keep working as they are.

CREATE TABLE fanout (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account TEXT NOT NULL,
    kind TEXT NOT NULL,            -- 'url' | 'dir' | 'tag'
    target TEXT NOT NULL,
    created_at INTEGER NOT NULL,   -- arrival of its oldest event (the jobs keep it)
    purge_ids TEXT NOT NULL        -- JSON array: the log records it serves
);
CREATE UNIQUE INDEX fanout_target ON fanout (account, kind, target);
CREATE INDEX fanout_order ON fanout (account, id);

ALTER TABLE purges ADD COLUMN fanout_left INTEGER NOT NULL DEFAULT 0;
