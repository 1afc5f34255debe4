INSERT INTO quota (lane, kind, day, used) VALUES ($1, $2, $3, GREATEST($4::bigint, 0))
ON CONFLICT (lane, kind, day) DO UPDATE SET used = GREATEST(quota.used + $4::bigint, 0)
