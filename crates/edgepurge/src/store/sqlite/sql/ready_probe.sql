-- /readyz: a one-row commit proves the store can write.
INSERT INTO meta (k, v) VALUES ('ready_probe', ?1)
ON CONFLICT (k) DO UPDATE SET v = excluded.v
