DELETE FROM listings WHERE source = $1
