DELETE FROM listings WHERE source = $1 AND key = ANY($2)
