SELECT MIN(id), MAX(id) FROM purges
