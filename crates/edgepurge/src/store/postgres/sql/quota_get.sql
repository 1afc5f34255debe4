SELECT used FROM quota WHERE lane = $1 AND kind = $2 AND day = $3
