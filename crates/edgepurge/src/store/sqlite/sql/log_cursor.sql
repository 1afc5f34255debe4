SELECT v FROM meta WHERE k = 'seq'
