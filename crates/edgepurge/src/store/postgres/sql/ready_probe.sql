-- /readyz: a one-row commit proves the database takes writes.
UPDATE edgepurge_meta SET v = $1 WHERE k = 'ready_probe'
