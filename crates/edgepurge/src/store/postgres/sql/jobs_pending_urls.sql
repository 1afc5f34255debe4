-- Pending URL jobs that may go now, oldest first, for collapse_to_dir_over (read only when
-- the URL quota left would not cover them).
SELECT id, target, allow_host FROM jobs
WHERE lane_id = $1 AND kind = 'url' AND batch_id IS NULL AND not_before <= $2
ORDER BY id LIMIT $3
