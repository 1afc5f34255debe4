CREATE TABLE IF NOT EXISTS edgepurge_schema (
    version bigint PRIMARY KEY,
    applied_at timestamptz NOT NULL
)
