SELECT origin FROM rules WHERE name = $1
