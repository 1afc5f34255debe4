DELETE FROM quota WHERE day < (SELECT MAX(day) - 7 FROM quota)
