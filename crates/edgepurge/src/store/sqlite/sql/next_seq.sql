UPDATE meta SET v = v + 1 WHERE k = 'seq' RETURNING v
