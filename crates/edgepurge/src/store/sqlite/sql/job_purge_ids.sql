SELECT purge_ids FROM jobs WHERE id = ?1
