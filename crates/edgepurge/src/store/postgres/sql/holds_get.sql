-- Holds (min_interval_ms) still in force on some targets.
SELECT h.lane_id, h.kind, h.target, h.until
FROM holds h
JOIN unnest($1::bigint[], $2::text[], $3::text[]) AS u(lane_id, kind, target)
    ON h.lane_id = u.lane_id AND h.kind = u.kind AND h.target = u.target
WHERE h.until > $4
