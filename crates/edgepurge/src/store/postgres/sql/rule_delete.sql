DELETE FROM rules WHERE name = $1
