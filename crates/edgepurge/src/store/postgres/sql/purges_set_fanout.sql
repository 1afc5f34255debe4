UPDATE purges p SET fanout_left = u.n
FROM unnest($1::bigint[], $2::bigint[]) AS u(id, n)
WHERE p.id = u.id
