DELETE FROM rules WHERE origin = 'config'
