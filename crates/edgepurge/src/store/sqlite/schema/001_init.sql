-- edgepurge store, schema version 1.
-- Times are milliseconds since the Unix epoch.

CREATE TABLE meta (
    k TEXT PRIMARY KEY,
    v INTEGER NOT NULL
);
INSERT INTO meta (k, v) VALUES ('seq', 0), ('rules_version', 0);

-- Rules: the config file's (origin 'config', replaced at each start) and the CLI's.
CREATE TABLE rules (
    name TEXT PRIMARY KEY,
    spec TEXT NOT NULL,            -- JSON RuleSpec
    origin TEXT NOT NULL,          -- 'config' | 'cli'
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- The purge log: one record per event and rule (or per event that no rule matched).
CREATE TABLE purges (
    id INTEGER PRIMARY KEY,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    seq INTEGER NOT NULL,          -- changes with every update, for `log --follow`
    rule TEXT,
    provider TEXT,
    format TEXT NOT NULL,
    event TEXT NOT NULL,
    bucket TEXT NOT NULL,
    key TEXT NOT NULL,
    event_id TEXT,
    targets TEXT NOT NULL,         -- JSON array of URLs / directories
    status TEXT NOT NULL,          -- skipped|queued|sent|failed|succeeded|dead
    attempts INTEGER NOT NULL DEFAULT 0,
    request_id TEXT,
    task_id TEXT,
    error TEXT
);
CREATE INDEX purges_seq ON purges (seq);
CREATE INDEX purges_created ON purges (created_at);
CREATE INDEX purges_rule ON purges (rule, created_at);

-- The queue: one job per lane, kind and target. A job without batch is pending, and a new
-- target merges into it; once claimed into a batch it never takes new events.
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY,
    lane TEXT NOT NULL,
    kind TEXT NOT NULL,            -- 'url' | 'dir'
    target TEXT NOT NULL,
    state TEXT NOT NULL,           -- queued|sent|failed|succeeded|dead
    batch_id INTEGER,
    created_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX jobs_pending ON jobs (lane, kind, target) WHERE batch_id IS NULL;
CREATE INDEX jobs_pending_age ON jobs (lane, kind, created_at) WHERE batch_id IS NULL;
CREATE INDEX jobs_batch ON jobs (batch_id);

CREATE TABLE purge_jobs (
    job_id INTEGER NOT NULL,
    purge_id INTEGER NOT NULL,
    PRIMARY KEY (job_id, purge_id)
) WITHOUT ROWID;
CREATE INDEX purge_jobs_purge ON purge_jobs (purge_id);

-- One provider request's worth of jobs, sent and retried as a unit.
CREATE TABLE batches (
    id INTEGER PRIMARY KEY,
    lane TEXT NOT NULL,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,           -- ready|inflight|succeeded|dead
    attempts INTEGER NOT NULL DEFAULT 0,
    n_jobs INTEGER NOT NULL,
    not_before INTEGER NOT NULL,
    owner TEXT,
    created_at INTEGER NOT NULL,   -- arrival of its oldest job (for max age)
    first_sent_at INTEGER,
    last_sent_at INTEGER,
    finished_at INTEGER,
    quota_day INTEGER,             -- day its quota reservation counts on; NULL = none held
    request_id TEXT,
    task_id TEXT,
    last_error TEXT
);
CREATE INDEX batches_lane_state ON batches (lane, state, not_before);

-- Every provider request, with its outcome.
CREATE TABLE requests (
    id INTEGER PRIMARY KEY,
    batch_id INTEGER NOT NULL,
    lane TEXT NOT NULL,
    kind TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    n_targets INTEGER NOT NULL,
    started_at INTEGER NOT NULL,
    finished_at INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    http_status INTEGER,
    request_id TEXT,
    task_id TEXT,
    error TEXT
);
CREATE INDEX requests_started ON requests (started_at);

-- Which process runs which lane, until when.
CREATE TABLE lanes (
    lane TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    lease_until INTEGER NOT NULL
);

-- Targets reserved against a provider's daily quota.
CREATE TABLE quota (
    lane TEXT NOT NULL,
    kind TEXT NOT NULL,
    day INTEGER NOT NULL,
    used INTEGER NOT NULL,
    PRIMARY KEY (lane, kind, day)
);
