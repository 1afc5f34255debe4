SELECT name, spec, created_at FROM rules WHERE origin = 'config'
