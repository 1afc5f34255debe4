UPDATE lanes SET owner = $2, lease_until = $3, token = $4 WHERE id = $1
