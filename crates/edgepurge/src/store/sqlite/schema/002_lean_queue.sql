-- edgepurge store, schema version 2: fewer rows and index entries per event.
--
-- * The job <-> record links move from the purge_jobs table into JSON arrays of ids on both
--   sides (purges.job_ids, jobs.purge_ids), and a batch keeps its jobs and records the same
--   way, so claiming and finishing a batch touch no index but the pending ones.
-- * A job's state is its batch's `status` (queued|sent|failed|succeeded|dead); a job without
--   a batch is pending.
-- * Lanes get integer ids (jobs and batches refer to them) and a fencing token: it grows at
--   every hand-over of the lease, and a batch in flight carries the token it was claimed with.
-- * Ids are never used twice, even after pruning: record and job ids are handed out from
--   counters in `meta` (`purge_id`, `job_id`: the last one given), batches use AUTOINCREMENT.
-- * A record's time never goes back from one record to the next (`meta.created_at`: the last
--   one given), so records in id order are in time order: "since" and retention go by id.

CREATE TABLE lanes_v2 (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    owner TEXT NOT NULL DEFAULT '',      -- '' when released
    lease_until INTEGER NOT NULL DEFAULT 0,
    token INTEGER NOT NULL DEFAULT 0
);
INSERT INTO lanes_v2 (name, owner, lease_until) SELECT lane, owner, lease_until FROM lanes;
INSERT OR IGNORE INTO lanes_v2 (name) SELECT DISTINCT lane FROM jobs;
INSERT OR IGNORE INTO lanes_v2 (name) SELECT DISTINCT lane FROM batches;

CREATE TABLE jobs_v2 (
    id INTEGER PRIMARY KEY,
    lane_id INTEGER NOT NULL,
    kind TEXT NOT NULL,            -- 'url' | 'dir' | 'tag'
    target TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    batch_id INTEGER,              -- NULL while pending
    purge_ids TEXT NOT NULL,       -- JSON array: the log records this job serves
    solo_ids TEXT NOT NULL         -- JSON array: those of them that have no other job
);
INSERT INTO jobs_v2 (id, lane_id, kind, target, created_at, batch_id, purge_ids, solo_ids)
SELECT j.id, l.id, j.kind, j.target, j.created_at, j.batch_id,
       COALESCE((SELECT json_group_array(purge_id)
                 FROM (SELECT purge_id FROM purge_jobs WHERE job_id = j.id ORDER BY purge_id)),
                '[]'),
       COALESCE((SELECT json_group_array(purge_id)
                 FROM (SELECT pj.purge_id FROM purge_jobs pj WHERE pj.job_id = j.id
                       AND (SELECT COUNT(*) FROM purge_jobs o WHERE o.purge_id = pj.purge_id) = 1
                       ORDER BY pj.purge_id)),
                '[]')
FROM jobs j JOIN lanes_v2 l ON l.name = j.lane;

CREATE TABLE batches_v2 (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    lane_id INTEGER NOT NULL,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,           -- ready|inflight|succeeded|dead
    status TEXT NOT NULL,          -- what its jobs are: queued|sent|failed|succeeded|dead
    token INTEGER,                 -- fencing token of the claim in flight
    attempts INTEGER NOT NULL DEFAULT 0,
    n_jobs INTEGER NOT NULL,
    not_before INTEGER NOT NULL,
    created_at INTEGER NOT NULL,   -- arrival of its oldest job (for max age)
    first_sent_at INTEGER,
    last_sent_at INTEGER,
    finished_at INTEGER,
    quota_day INTEGER,             -- day its quota reservation counts on; NULL = none held
    request_id TEXT,
    task_id TEXT,
    last_error TEXT,
    job_ids TEXT NOT NULL,         -- JSON array, in send order
    purge_ids TEXT NOT NULL,       -- JSON array of the records its jobs serve
    solo_ids TEXT NOT NULL         -- JSON array: those whose only job is in this batch
);
INSERT INTO batches_v2 (id, lane_id, kind, state, status, token, attempts, n_jobs, not_before,
    created_at, first_sent_at, last_sent_at, finished_at, quota_day, request_id, task_id,
    last_error, job_ids, purge_ids, solo_ids)
SELECT b.id, l.id, b.kind, b.state,
       COALESCE((SELECT state FROM jobs WHERE batch_id = b.id LIMIT 1),
                CASE b.state WHEN 'inflight' THEN 'sent' WHEN 'ready' THEN 'queued'
                             ELSE b.state END),
       NULL, b.attempts, b.n_jobs, b.not_before, b.created_at, b.first_sent_at,
       b.last_sent_at, b.finished_at, b.quota_day, b.request_id, b.task_id, b.last_error,
       COALESCE((SELECT json_group_array(id)
                 FROM (SELECT id FROM jobs WHERE batch_id = b.id ORDER BY id)), '[]'),
       COALESCE((SELECT json_group_array(purge_id)
                 FROM (SELECT DISTINCT pj.purge_id FROM purge_jobs pj
                       JOIN jobs j ON j.id = pj.job_id
                       WHERE j.batch_id = b.id ORDER BY pj.purge_id)), '[]'),
       COALESCE((SELECT json_group_array(purge_id)
                 FROM (SELECT DISTINCT pj.purge_id FROM purge_jobs pj
                       JOIN jobs j ON j.id = pj.job_id
                       WHERE j.batch_id = b.id
                         AND (SELECT COUNT(*) FROM purge_jobs o WHERE o.purge_id = pj.purge_id) = 1
                       ORDER BY pj.purge_id)), '[]')
FROM batches b JOIN lanes_v2 l ON l.name = b.lane;

ALTER TABLE purges ADD COLUMN job_ids TEXT;   -- JSON array; NULL when nothing to purge
UPDATE purges SET job_ids = (SELECT json_group_array(job_id)
                             FROM (SELECT job_id FROM purge_jobs
                                   WHERE purge_id = purges.id ORDER BY job_id))
WHERE EXISTS (SELECT 1 FROM purge_jobs WHERE purge_id = purges.id);

DROP TABLE purge_jobs;
DROP TABLE jobs;
DROP TABLE batches;
DROP TABLE lanes;
ALTER TABLE lanes_v2 RENAME TO lanes;
ALTER TABLE jobs_v2 RENAME TO jobs;
ALTER TABLE batches_v2 RENAME TO batches;

CREATE UNIQUE INDEX jobs_pending ON jobs (lane_id, kind, target) WHERE batch_id IS NULL;
CREATE INDEX jobs_pending_order ON jobs (lane_id, kind, id) WHERE batch_id IS NULL;
CREATE INDEX batches_lane_state ON batches (lane_id, state, not_before);
CREATE INDEX batches_finished ON batches (finished_at) WHERE finished_at IS NOT NULL;

DROP INDEX purges_rule;
CREATE INDEX purges_rule ON purges (rule, id);
-- "Since" and retention go by id (records are numbered in arrival order), not by an index on
-- time: one index fewer to write per event.
DROP INDEX purges_created;

INSERT INTO meta (k, v) SELECT 'purge_id', COALESCE(MAX(id), 0) FROM purges;
INSERT INTO meta (k, v) SELECT 'job_id', COALESCE(MAX(id), 0) FROM jobs;
INSERT INTO meta (k, v) SELECT 'created_at', COALESCE(MAX(created_at), 0) FROM purges;
