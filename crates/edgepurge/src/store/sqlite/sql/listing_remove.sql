DELETE FROM listings WHERE source = ?1 AND key = ?2
