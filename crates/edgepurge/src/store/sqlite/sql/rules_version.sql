SELECT v FROM meta WHERE k = 'rules_version'
