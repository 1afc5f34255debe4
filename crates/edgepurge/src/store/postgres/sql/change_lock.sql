-- Held from here through commit: change positions are given in commit order.
SELECT pg_advisory_xact_lock(7036874417766400001)
