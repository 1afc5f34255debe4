SELECT id FROM fanout WHERE account = ?1 AND kind = ?2 AND target = ?3
