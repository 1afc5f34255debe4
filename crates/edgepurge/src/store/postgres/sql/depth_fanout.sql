SELECT account, COUNT(*), MIN(created_at)
FROM fanout
GROUP BY account
ORDER BY account
