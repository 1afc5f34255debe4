SELECT scope FROM listing_scopes WHERE source = $1
