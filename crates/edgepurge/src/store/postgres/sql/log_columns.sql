SELECT p.id, c.seq, p.created_at, p.updated_at, p.rule, p.provider, p.format, p.event,
    p.bucket, p.key, p.event_id, p.targets, p.status, p.attempts, p.request_id, p.task_id,
    p.error, p.completed_at, p.etag, p.size, p.verify, p.verify_note,
    p.warm, p.warm_note, p.warm_task, p.note
FROM purges p JOIN changes c ON c.xid = p.xid
