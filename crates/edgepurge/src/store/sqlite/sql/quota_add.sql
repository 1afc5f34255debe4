INSERT INTO quota (lane, kind, day, used) VALUES (?1, ?2, ?3, MAX(?4, 0))
ON CONFLICT (lane, kind, day) DO UPDATE SET used = MAX(used + ?4, 0)
