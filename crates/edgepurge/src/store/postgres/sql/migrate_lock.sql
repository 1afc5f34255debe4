-- One node at a time brings the schema up to date.
SELECT pg_advisory_xact_lock(7036874417766400003)
