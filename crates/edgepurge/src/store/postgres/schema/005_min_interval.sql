-- edgepurge PostgreSQL schema, step 005: a rule's `min_interval_ms` (a target purged at t
-- is not purged again before t + min_interval_ms), and a note on log records. (004 is
-- another branch's step; the files keep their numbers.)
--
-- * jobs.not_before: a pending job is not claimed before this time (0: at once).
-- * jobs.min_interval_ms: the longest interval of the rules the job serves; claiming the job
--   holds its target that long.
-- * holds: until when each target may not be purged again (written for jobs with an
--   interval only, read by their ingest; pruned once past).
-- * purges.note: what the queue did with the record besides its status.

ALTER TABLE jobs ADD COLUMN not_before bigint NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN min_interval_ms bigint NOT NULL DEFAULT 0;
-- Whether every record of the job allows a whole-host purge (its rule's allow_host_purge):
-- only then may collapse_to_dir_over purge the URL's host root.
ALTER TABLE jobs ADD COLUMN allow_host boolean NOT NULL DEFAULT false;
ALTER TABLE purges ADD COLUMN note text;

CREATE TABLE holds (
    lane_id bigint NOT NULL,
    kind text NOT NULL,
    target text NOT NULL,
    until bigint NOT NULL,
    PRIMARY KEY (lane_id, kind, target)
);
CREATE INDEX holds_until ON holds (until);

-- The earliest held job of a lane and kind, without scanning the backlog.
CREATE INDEX jobs_held ON jobs (lane_id, kind, not_before) WHERE batch_id IS NULL AND not_before > 0;
