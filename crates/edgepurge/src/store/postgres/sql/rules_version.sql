SELECT v FROM edgepurge_meta WHERE k = 'rules_version'
