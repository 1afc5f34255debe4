-- Targets purged now, held until their rule's min_interval_ms is over (in key order, so
-- concurrent claims lock rows in one order).
INSERT INTO holds (lane_id, kind, target, until)
SELECT $1, $2, u.target, u.until
FROM unnest($3::text[], $4::bigint[]) AS u(target, until)
ORDER BY u.target
ON CONFLICT (lane_id, kind, target) DO UPDATE SET until = GREATEST(holds.until, EXCLUDED.until)
