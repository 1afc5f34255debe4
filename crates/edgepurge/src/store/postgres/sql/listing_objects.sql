SELECT key, etag, size, modified FROM listings WHERE source = $1
