INSERT INTO listing_scopes (source, scope, saved_at) VALUES ($1, $2, $3)
ON CONFLICT (source) DO UPDATE SET scope = EXCLUDED.scope, saved_at = EXCLUDED.saved_at
