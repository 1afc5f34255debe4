INSERT INTO changes (xid, seq) VALUES (pg_current_xact_id(), nextval('change_seq'))
