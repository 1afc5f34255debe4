-- edgepurge store, schema step 007: a rule's `min_interval_ms` (a target purged at t is not
-- purged again before t + min_interval_ms), and a note on log records.
--
-- * jobs.not_before: a pending job is not claimed before this time (0: at once). A job of a
--   rule with an interval, queued while its target is held, waits until the hold ends.
-- * jobs.min_interval_ms: the longest interval of the rules the job serves; claiming the job
--   holds its target that long.
-- * holds: until when each target (lane, kind, target) may not be purged again. Written only
--   for jobs with an interval, read only by their ingest; pruned once past.
-- * purges.note: what the queue did with the record besides its status ("held until …
--   (min_interval_ms)", "collapsed into dir purge …").

ALTER TABLE jobs ADD COLUMN not_before INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN min_interval_ms INTEGER NOT NULL DEFAULT 0;
-- Whether every record of the job allows a whole-host purge (its rule's allow_host_purge):
-- only then may collapse_to_dir_over purge the URL's host root.
ALTER TABLE jobs ADD COLUMN allow_host INTEGER NOT NULL DEFAULT 0;
ALTER TABLE purges ADD COLUMN note TEXT;

CREATE TABLE holds (
    lane_id INTEGER NOT NULL,
    kind TEXT NOT NULL,
    target TEXT NOT NULL,
    until INTEGER NOT NULL,
    PRIMARY KEY (lane_id, kind, target)
) WITHOUT ROWID;
CREATE INDEX holds_until ON holds (until);

-- The earliest held job of a lane and kind, without scanning the backlog (only held jobs
-- are in it).
CREATE INDEX jobs_held ON jobs (lane_id, kind, not_before) WHERE batch_id IS NULL AND not_before > 0;
