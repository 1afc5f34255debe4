UPDATE fanout SET purge_ids = json_insert(purge_ids, '$[#]', ?2) WHERE id = ?1
