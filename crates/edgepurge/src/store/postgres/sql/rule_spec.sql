SELECT spec FROM rules WHERE name = $1
