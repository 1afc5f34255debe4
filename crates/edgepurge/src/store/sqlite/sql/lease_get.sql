SELECT id, owner, lease_until, token FROM lanes WHERE name = ?1
