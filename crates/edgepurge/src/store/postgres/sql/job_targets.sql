SELECT id, target FROM jobs WHERE id = ANY($1)
