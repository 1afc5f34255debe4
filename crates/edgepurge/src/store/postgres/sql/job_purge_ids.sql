SELECT id, purge_ids, solo_ids FROM jobs WHERE id = ANY($1)
