-- Jobs held by a rule's min_interval_ms (not_before after ?4) wait.
SELECT COUNT(*) FROM (
    SELECT 1 FROM jobs
    WHERE lane_id = ?1 AND kind = ?2 AND batch_id IS NULL AND not_before <= ?4
    LIMIT ?3)
