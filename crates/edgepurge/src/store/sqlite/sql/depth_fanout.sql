-- Per account: its fan-out targets and the arrival of the first stored (the lowest id, found
-- through fanout_order rather than reading every row for a MIN).
SELECT f.account, COUNT(*),
    (SELECT g.created_at FROM fanout g WHERE g.account = f.account ORDER BY g.id LIMIT 1)
FROM fanout f
GROUP BY f.account
ORDER BY f.account
