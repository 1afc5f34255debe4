SELECT target FROM jobs WHERE id = ?1
