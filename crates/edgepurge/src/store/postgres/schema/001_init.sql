-- edgepurge PostgreSQL store, schema version 1. Times are milliseconds since the Unix epoch,
-- except where the database's own clock decides (lane leases: `clock_timestamp()`).
--
-- The same model as the SQLite store (see its schema/), shared by every node of a cluster:
-- * Ids come from sequences: never given twice, but not in commit order.
-- * The change cursor: a log record is stamped with the transaction that last changed it
--   (`purges.xid`), and every such transaction gets one row in `changes` with its position
--   `seq`, numbered under an exclusive transaction-level advisory lock taken just before
--   commit and held through it, so positions are given in commit order.
-- * id lists are arrays (`bigint[]`); a record's targets are a JSON array (text).

CREATE TABLE edgepurge_meta (
    k text PRIMARY KEY,
    v bigint NOT NULL
);
INSERT INTO edgepurge_meta (k, v) VALUES ('rules_version', 0), ('ready_probe', 0);

CREATE TABLE rules (
    name text PRIMARY KEY,
    spec text NOT NULL,            -- JSON RuleSpec
    origin text NOT NULL,          -- 'config' | 'cli'
    created_at bigint NOT NULL,
    updated_at bigint NOT NULL
);

CREATE SEQUENCE change_seq;
CREATE TABLE changes (
    xid xid8 PRIMARY KEY,          -- the transaction
    seq bigint NOT NULL UNIQUE     -- its position in commit order
);

CREATE TABLE purges (
    id bigserial PRIMARY KEY,
    created_at bigint NOT NULL,
    updated_at bigint NOT NULL,
    xid xid8 NOT NULL,             -- the transaction that changed it last (see `changes`)
    rule text,
    provider text,
    format text NOT NULL,
    event text NOT NULL,
    bucket text NOT NULL,
    key text NOT NULL,
    event_id text,
    targets text NOT NULL,         -- JSON array of URLs / directories / tags
    job_ids bigint[],              -- NULL when nothing to purge
    status text NOT NULL,          -- skipped|queued|sent|failed|succeeded|dead
    attempts bigint NOT NULL DEFAULT 0,
    request_id text,
    task_id text,
    error text
);
CREATE INDEX purges_xid ON purges (xid);
CREATE INDEX purges_created ON purges (created_at, id);
CREATE INDEX purges_rule ON purges (rule, id);

CREATE TABLE lanes (
    id bigserial PRIMARY KEY,
    name text NOT NULL UNIQUE,
    owner text NOT NULL DEFAULT '',      -- '' when released
    lease_until bigint NOT NULL DEFAULT 0, -- ms on the database's clock
    token bigint NOT NULL DEFAULT 0
);

CREATE TABLE jobs (
    id bigserial PRIMARY KEY,
    lane_id bigint NOT NULL,
    kind text NOT NULL,
    target text NOT NULL,
    created_at bigint NOT NULL,
    batch_id bigint,               -- NULL while pending
    purge_ids bigint[] NOT NULL,   -- the log records this job serves
    solo_ids bigint[] NOT NULL     -- those of them that have no other job
);
CREATE UNIQUE INDEX jobs_pending ON jobs (lane_id, kind, target) WHERE batch_id IS NULL;
CREATE INDEX jobs_pending_order ON jobs (lane_id, kind, id) WHERE batch_id IS NULL;

CREATE TABLE batches (
    id bigserial PRIMARY KEY,
    lane_id bigint NOT NULL,
    kind text NOT NULL,
    state text NOT NULL,           -- ready|inflight|succeeded|dead
    status text NOT NULL,          -- what its jobs are: queued|sent|failed|succeeded|dead
    token bigint,                  -- fencing token of the claim in flight
    attempts bigint NOT NULL DEFAULT 0,
    n_jobs bigint NOT NULL,
    not_before bigint NOT NULL,
    created_at bigint NOT NULL,
    first_sent_at bigint,
    last_sent_at bigint,
    finished_at bigint,
    quota_day bigint,
    request_id text,
    task_id text,
    last_error text,
    job_ids bigint[] NOT NULL,     -- in send order
    purge_ids bigint[] NOT NULL,
    solo_ids bigint[] NOT NULL
);
CREATE INDEX batches_lane_state ON batches (lane_id, state, not_before);
CREATE INDEX batches_finished ON batches (finished_at) WHERE finished_at IS NOT NULL;

CREATE TABLE requests (
    id bigserial PRIMARY KEY,
    batch_id bigint NOT NULL,
    lane text NOT NULL,
    kind text NOT NULL,
    attempt bigint NOT NULL,
    n_targets bigint NOT NULL,
    started_at bigint NOT NULL,
    finished_at bigint NOT NULL,
    outcome text NOT NULL,
    http_status bigint,
    request_id text,
    task_id text,
    error text
);
CREATE INDEX requests_started ON requests (started_at);

CREATE TABLE quota (
    lane text NOT NULL,
    kind text NOT NULL,
    day bigint NOT NULL,
    used bigint NOT NULL,
    PRIMARY KEY (lane, kind, day)
);

CREATE TABLE listing_scopes (
    source text PRIMARY KEY,
    scope text NOT NULL,
    saved_at bigint NOT NULL
);

CREATE TABLE listings (
    source text NOT NULL,
    key text NOT NULL,
    etag text NOT NULL,
    size bigint NOT NULL,
    modified text NOT NULL,
    PRIMARY KEY (source, key)
);
