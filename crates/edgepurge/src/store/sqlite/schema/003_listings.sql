-- edgepurge store, schema version 3: the bucket poller's listings (`[[sources]] kind =
-- "poll"`), so a restart compares with what was seen before instead of purging everything.

CREATE TABLE listing_scopes (
    source TEXT PRIMARY KEY,        -- the source's name
    scope TEXT NOT NULL,            -- endpoint, bucket and prefix the listing is of
    saved_at INTEGER NOT NULL       -- ms
);

CREATE TABLE listings (
    source TEXT NOT NULL,
    key TEXT NOT NULL,
    etag TEXT NOT NULL,
    size INTEGER NOT NULL,
    modified TEXT NOT NULL,
    PRIMARY KEY (source, key)
) WITHOUT ROWID;
