DELETE FROM holds WHERE (lane_id, kind, target) IN (
    SELECT lane_id, kind, target FROM holds WHERE until < ?1 LIMIT ?2)
