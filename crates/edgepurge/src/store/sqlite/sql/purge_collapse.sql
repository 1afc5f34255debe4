UPDATE purges SET job_ids = ?2, note = ?3, updated_at = ?4, seq = ?5
WHERE id = ?1
