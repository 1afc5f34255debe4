SELECT purge_ids, solo_ids FROM jobs WHERE id = ?1
