SELECT nextval('purges_id_seq') FROM generate_series(1, $1::bigint)
