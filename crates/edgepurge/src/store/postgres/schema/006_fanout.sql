-- edgepurge PostgreSQL store, fan-out targets (as SQLite's 008_fanout). A target of a
-- provider account with several lanes (an http-purge account: one lane per cache node) is
-- stored once here at ingest, and expanded into one pending job per lane in bounded slices
-- by a lane of the account when its own backlog is low (rows taken FOR UPDATE SKIP LOCKED,
-- then deleted, so several nodes expand different slices).
--
-- * fanout: one row per account, kind and pending target; a new target merges into it (no
--   lane has it yet, so nothing of it was sent).
-- * purges.fanout_left: fan-out rows of the record not yet expanded; the record is not
--   settled while any is left.
--
-- Jobs queued before this version keep working as they are.

CREATE TABLE fanout (
    id bigserial PRIMARY KEY,
    account text NOT NULL,
    kind text NOT NULL,
    target text NOT NULL,
    created_at bigint NOT NULL,    -- arrival of its oldest event (the jobs keep it)
    purge_ids bigint[] NOT NULL    -- the log records it serves
);
CREATE UNIQUE INDEX fanout_target ON fanout (account, kind, target);
CREATE INDEX fanout_order ON fanout (account, id);

ALTER TABLE purges ADD COLUMN fanout_left bigint NOT NULL DEFAULT 0;
