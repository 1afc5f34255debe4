SELECT (SELECT v FROM meta WHERE k = 'purge_id'), (SELECT v FROM meta WHERE k = 'job_id'),
    (SELECT v FROM meta WHERE k = 'created_at')
