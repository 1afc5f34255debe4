UPDATE rules SET spec = $2, updated_at = $3 WHERE name = $1
