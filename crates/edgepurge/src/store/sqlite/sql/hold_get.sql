SELECT until FROM holds WHERE lane_id = ?1 AND kind = ?2 AND target = ?3 AND until > ?4
