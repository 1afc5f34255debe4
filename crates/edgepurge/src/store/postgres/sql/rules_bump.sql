UPDATE edgepurge_meta SET v = v + 1 WHERE k = 'rules_version'
