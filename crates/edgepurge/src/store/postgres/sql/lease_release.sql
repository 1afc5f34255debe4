UPDATE lanes SET owner = '', lease_until = 0 WHERE name = $1 AND owner = $2
