-- Positions no record refers to any more (the newest stays: it is the log's cursor).
DELETE FROM changes WHERE xid IN (
    SELECT c.xid FROM changes c
    WHERE c.seq < (SELECT MAX(seq) FROM changes)
      AND NOT EXISTS (SELECT 1 FROM purges p WHERE p.xid = c.xid)
    ORDER BY c.seq LIMIT $1)
