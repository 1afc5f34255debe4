INSERT INTO holds (lane_id, kind, target, until) VALUES (?1, ?2, ?3, ?4)
ON CONFLICT (lane_id, kind, target) DO UPDATE SET until = MAX(until, excluded.until)
