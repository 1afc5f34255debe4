SELECT id FROM lanes WHERE name = $1
