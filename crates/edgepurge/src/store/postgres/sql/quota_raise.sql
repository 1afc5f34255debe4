INSERT INTO quota (lane, kind, day, used) VALUES ($1, $2, $3, $4)
ON CONFLICT (lane, kind, day) DO UPDATE SET used = GREATEST(quota.used, EXCLUDED.used)
