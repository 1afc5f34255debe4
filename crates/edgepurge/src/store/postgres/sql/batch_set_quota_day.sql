UPDATE batches SET quota_day = $2 WHERE id = $1
