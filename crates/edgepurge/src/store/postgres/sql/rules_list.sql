SELECT name, spec, origin, created_at FROM rules ORDER BY name
