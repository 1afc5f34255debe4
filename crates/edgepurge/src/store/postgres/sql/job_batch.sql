SELECT batch_id FROM jobs WHERE id = $1
