-- Rule changes one at a time across every node (two nodes starting at once both replace the
-- config file's rules).
SELECT pg_advisory_xact_lock(7036874417766400002)
