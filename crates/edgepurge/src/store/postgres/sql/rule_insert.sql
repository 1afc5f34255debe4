INSERT INTO rules (name, spec, origin, created_at, updated_at) VALUES ($1, $2, $3, $4, $5)
